"""The installed ``sftdata`` command: usage errors and user mistakes are one line with
exit status 2, ``--version`` works, and a real bug says it is one."""

from __future__ import annotations

import pytest

from sftdata import __version__
from tests.safety.helpers import assert_one_line_error, write_alpaca


@pytest.mark.parametrize("args, contains", [
    (["bogus"], "No such command 'bogus'"),
    (["convert", "x.jsonl", "-o", "y.jsonl"], "Missing option '--to'"),
    (["convert", "--bogus"], "No such option: --bogus"),
    (["dedup", "in.jsonl", "-o", "o.jsonl", "--threshold", "7"], "--threshold"),
    (["convert", "missing.jsonl", "-o", "y.jsonl", "--to", "sharegpt"], "missing.jsonl: no such file"),
    (["convert", "in.jsonl", "-o", "y.txt", "--to", "sharegpt"], "unknown extension '.txt'"),
    (["convert", "in.jsonl", "-o", "y.jsonl", "--to", "chatml"], "'chatml' is not one of 'alpaca'"),
    (["convert", "in.jsonl", "-o", "", "--to", "sharegpt"], "unknown extension"),
    (["generate", "-o", "g.jsonl", "--base-url", "http://[::1/v1"], "not an http(s)://"),
    (["generate", "-o", "g.jsonl", "--base-url", "ftp://host/v1"], "not an http(s)://"),
    (["train", "in.jsonl", "-o", "t", "--model", "empty_folder"], "no config.json"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, sftdata_cmd, args, contains):
    write_alpaca(tmp_path / "in.jsonl")
    (tmp_path / "empty_folder").mkdir()
    proc = sftdata_cmd(*args, cwd=tmp_path)
    line = assert_one_line_error(proc, 2, contains=contains)
    if args[0] in ("bogus", "convert") and "--help" in line:
        assert "sftdata" in line


def test_version(sftdata_cmd):
    proc = sftdata_cmd("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"sftdata {__version__}"


def test_no_arguments_prints_the_help(sftdata_cmd):
    proc = sftdata_cmd()
    assert "Traceback" not in proc.stderr and proc.returncode == 2
    assert "convert" in proc.stdout + proc.stderr


def test_an_input_that_is_a_folder_or_not_utf8(tmp_path, sftdata_cmd):
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "latin1.json").write_bytes(b'[{"instruction": "caf\xe9", "output": "x"}]')
    assert_one_line_error(sftdata_cmd("validate", "folder.jsonl", cwd=tmp_path), 2, contains="is a directory")
    assert_one_line_error(sftdata_cmd("validate", "latin1.json", cwd=tmp_path), 2, contains="not valid UTF-8")


def test_a_bug_prints_its_traceback_and_asks_for_a_report(cli, monkeypatch, tmp_path, capsys):
    import sftdata.cli.data_commands as commands

    def broken(*args, **kwargs):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(commands, "convert_file", broken)
    src = write_alpaca(tmp_path / "in.jsonl")
    result = cli("convert", src, "-o", tmp_path / "out.jsonl", "--to", "sharegpt")
    assert result.exit_code == 1
    err = capsys.readouterr().err + result.stderr
    assert "RuntimeError: an internal bug" in err and "This is a bug in sftdata" in err

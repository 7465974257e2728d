"""Bad paths through the installed command: no output or rejects file may be an input or
the other output, a folder, or unwritable; every such case is refused with one line
before any work, and nothing is left half-written. Replacing a file sftdata did not write
is announced; a replaced file keeps its permissions."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat

import pytest

from tests.safety.helpers import assert_one_line_error, write_alpaca


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".sftdata-tmp-"))


def test_rejects_default_path_equal_to_the_input_is_refused(tmp_path, sftdata_cmd):
    # `convert data.rejects.jsonl -o data.jsonl`: the default rejects file IS the input.
    (tmp_path / ".rejects").mkdir()
    src = write_alpaca(tmp_path / ".rejects" / "data.rejects.jsonl")
    before = src.read_bytes()
    proc = sftdata_cmd("convert", ".rejects/data.rejects.jsonl", "-o", "data.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="is also the input")
    assert src.read_bytes() == before and not (tmp_path / "data.jsonl").exists()


@pytest.mark.parametrize("args", [
    ["convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", "--rejects", "out.jsonl"],
    ["convert", "in.jsonl", "-o", "in.jsonl", "--to", "sharegpt"],
    ["convert", "in.jsonl", "-o", "link.jsonl", "--to", "sharegpt"],
    ["dedup", "in.jsonl", "-o", "out.jsonl", "--rejects", "in.jsonl"],
    ["filter", "in.jsonl", "-o", "out.jsonl", "--rejects", "./sub/../in.jsonl"],
    ["decontaminate", "in.jsonl", "-o", "eval.jsonl", "--against", "eval.jsonl"],
    ["mix", "-o", "out.jsonl", "-s", "in.jsonl", "--report", "out.jsonl"],
    ["mix", "-o", "in.jsonl", "-s", "in.jsonl"],
    ["audit", "in.jsonl", "--html", "in.jsonl"],
    ["audit", "in.jsonl", "--html", "same.json", "--json", "same.json"],
    ["generate", "-o", "out.jsonl", "--rejects", "out.jsonl", "--base-url", "http://127.0.0.1:9/v1"],
    ["generate", "-o", "in.jsonl", "--seeds", "in.jsonl", "--base-url", "http://127.0.0.1:9/v1"],
])
def test_an_output_that_is_an_input_or_the_other_output_is_refused(tmp_path, sftdata_cmd, args):
    src = write_alpaca(tmp_path / "in.jsonl")
    write_alpaca(tmp_path / "eval.jsonl", start=100)
    (tmp_path / "sub").mkdir()
    os.symlink(src, tmp_path / "link.jsonl")
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = sftdata_cmd(*args, cwd=tmp_path)
    line = assert_one_line_error(proc, 2)
    assert "is also" in line, line
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == snapshot  # nothing written, nothing changed


def test_an_output_that_is_a_directory(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "in.jsonl")
    (tmp_path / "out.jsonl").mkdir()
    proc = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="is a directory")
    (tmp_path / "r.jsonl").mkdir()
    proc = sftdata_cmd("convert", "in.jsonl", "-o", "o.jsonl", "--to", "sharegpt", "--rejects", "r.jsonl",
                       cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="is a directory")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("rejects", ["r.parquet", "r.txt", "r.csv"])
def test_rejects_name_is_checked_before_the_output_is_written(tmp_path, sftdata_cmd, rejects):
    # Mixed-type raw records cannot go into Parquet: before, the output was written and
    # the rejects were then lost with a traceback.
    (tmp_path / "in.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": 3}\nnot json\n')
    proc = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", "--rejects", rejects,
                       cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="use a .jsonl name")
    assert not (tmp_path / "out.jsonl").exists()


def test_an_unwritable_folder_is_one_line_before_any_work(tmp_path, readonly_dir, sftdata_cmd):
    write_alpaca(tmp_path / "in.jsonl")
    proc = sftdata_cmd("convert", "in.jsonl", "-o", readonly_dir / "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="cannot write in")
    proc = sftdata_cmd("convert", "in.jsonl", "-o", "ok.jsonl", "--to", "sharegpt",
                       "--rejects", readonly_dir / "sub" / "r.jsonl", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="cannot write in")
    assert not (tmp_path / "ok.jsonl").exists()
    proc = sftdata_cmd("convert", "in.jsonl", "-o", "in.jsonl/x.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="is a file, not a folder")


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _incompressible_alpaca(path, n: int):
    rows = [{"instruction": f"Repeat {i}.", "output": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("output", ["out.jsonl", "out.parquet", "out.json"])
def test_a_write_that_runs_out_of_room_is_one_line_and_leaves_nothing(tmp_path, sftdata_cmd, output):
    _incompressible_alpaca(tmp_path / "in.jsonl", 3000)
    proc = sftdata_cmd("convert", "in.jsonl", "-o", output, "--to", "openai", cwd=tmp_path,
                       preexec_fn=_limit_file_size(8_000))
    line = assert_one_line_error(proc, 1, contains=f"cannot write {output}")
    assert "File too large" in line
    assert not (tmp_path / output).exists() and _temps(tmp_path) == []


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, full_disk, sftdata_cmd):
    write_alpaca(tmp_path / "in.jsonl", n=3000)
    proc = sftdata_cmd("convert", "in.jsonl", "-o", full_disk / "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 1, contains="No space left on device")
    assert list(full_disk.iterdir()) == []


def test_replacing_a_file_sftdata_did_not_write_is_announced(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "in.jsonl")
    (tmp_path / "out.jsonl").write_text("my precious notes\n")
    first = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "replacing out.jsonl, which sftdata did not write" in first.stderr
    again = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert again.returncode == 0 and "replacing" not in again.stderr  # now it is ours
    with open(tmp_path / "out.jsonl", "a") as f:  # edited since: no longer "ours"
        f.write("\n")
    edited = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert "replacing out.jsonl" in edited.stderr


def test_a_replaced_file_keeps_its_permissions(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    assert sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt", cwd=tmp_path).returncode == 0
    out.chmod(0o600)
    for to in ("openai", "alpaca"):  # the vectorised path and the record-by-record one
        proc = sftdata_cmd("convert", "in.jsonl", "-o", "out.jsonl", "--to", to, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text().splitlines()[0])["instruction"]


def test_merge_never_replaces_a_folder_it_did_not_make(tmp_path, sftdata_cmd):
    (tmp_path / "adapter").mkdir()
    mine = tmp_path / "models"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    proc = sftdata_cmd("merge", "adapter", "-o", "models", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="sftdata did not make")
    assert (mine / "keep.txt").read_text() == "mine"


def test_generation_running_out_of_room_is_one_line(tmp_path, sftdata_cmd):
    from sftdata.generate.fake_server import FakeServer

    with FakeServer() as server:
        proc = sftdata_cmd("generate", "-n", "40", "-o", "out.jsonl", "--base-url", server.url, cwd=tmp_path,
                           preexec_fn=_limit_file_size(3_000))
    line = assert_one_line_error(proc, 1, contains="cannot write")
    assert "File too large" in line

"""The convert / validate / schemas commands, as a user runs them."""

from __future__ import annotations

import json
from importlib import resources

from sftdata.schemas_gen import render_schemas


def test_convert_writes_output_rejects_and_summary(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"instruction": "a", "output": "b"}) + "\n" + '{"instruction": 1, "output": "b"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = cli("convert", src, "-o", out, "--to", "openai")
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["messages"][0] == {"role": "user", "content": "a"}
    rejects = [json.loads(line) for line in (tmp_path / ".rejects" / "out.rejects.jsonl").read_text().splitlines()]
    assert [(r["location"], r["reason"]) for r in rejects] == [(2, "not_a_string:instruction")]
    assert "not_a_string:instruction" in result.stderr and "records in" in result.stderr

    strict = cli("convert", src, "-o", out, "--to", "openai", "--strict", "--rejects", tmp_path / "r.jsonl")
    assert strict.exit_code == 1
    assert (tmp_path / "r.jsonl").exists()


def test_validate_prints_file_and_line(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{bad\n', encoding="utf-8")
    result = cli("validate", src)
    assert result.exit_code == 1
    assert f"{src}:2: bad_json" in result.stdout.splitlines()
    clean = tmp_path / "ok.jsonl"
    clean.write_text('{"instruction": "a", "output": "b"}\n', encoding="utf-8")
    assert cli("validate", clean).exit_code == 0


def test_user_errors_are_one_line(cli, tmp_path):
    result = cli("convert", tmp_path / "nope.json", "-o", tmp_path / "o.jsonl", "--to", "alpaca")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
    bad_to = cli("convert", tmp_path / "nope.json", "-o", tmp_path / "o.jsonl", "--to", "yaml")
    assert bad_to.exit_code == 2 and "'yaml' is not one of 'alpaca'" in bad_to.stderr  # a choice: --help lists them


def test_committed_schemas_match_the_models():
    """Fails when a model changes without `sftdata schemas` being re-run."""
    folder = resources.files("sftdata.schemas")
    for name, text in render_schemas().items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name} is stale: run `sftdata schemas`"


def test_schemas_check_command(cli, tmp_path):
    assert cli("schemas", "-o", tmp_path).exit_code == 0
    assert cli("schemas", "-o", tmp_path, "--check").exit_code == 0
    (tmp_path / "record.schema.json").write_text("{}", encoding="utf-8")
    assert cli("schemas", "-o", tmp_path, "--check").exit_code == 1

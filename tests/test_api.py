"""The Python API gives what the commands give: same rows, same rejects, same run."""

from __future__ import annotations

import json

import pytest

import sftdata
from sftdata.errors import UserError
from tests.run.test_run import write_recipe


def test_read_apply_write_match_the_commands(tmp_path, cli, realworld):
    src = realworld / "glaive_toolcall_en_demo.json"
    assert cli("convert", src, "-o", tmp_path / "cli.jsonl", "--to", "alpaca").exit_code == 0
    data = sftdata.read(src)
    rejects = sftdata.write(data, tmp_path / "api.jsonl", to="alpaca")
    assert (tmp_path / "api.jsonl").read_bytes() == (tmp_path / "cli.jsonl").read_bytes()
    cli_rejects = [json.loads(x) for x in (tmp_path / ".rejects" / "cli.rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejects] == [r["id"] for r in cli_rejects]

    assert cli("dedup", src, "-o", tmp_path / "dedup.jsonl", "--exact-only").exit_code == 0
    deduped = sftdata.apply(data, ["exact_dedup"])
    assert len(deduped) == len((tmp_path / "dedup.jsonl").read_text().splitlines())
    with pytest.raises(UserError, match="step 'length': min_words"):
        sftdata.apply(data, [{"length": {"min_words": 2}}])


def test_run_is_sftdata_run(tmp_path):
    summary = sftdata.run(write_recipe(tmp_path), train=False)
    assert summary["records"] > 0 and (tmp_path / "run" / "summary.json").exists()

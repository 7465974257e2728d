"""Column and field names polars would read as patterns (``^...$``, ``*``) are
plain names to sftdata: a file other tools wrote with such names converts, filters and
dedups through the installed command, and every value comes back under its own name."""

from __future__ import annotations

import datetime
import json

import polars as pl
import pytest

def _rows() -> list[dict]:
    return [{"instruction": f"question {i}", "output": f"answer {i}",
             "^$": i, "^[\\w]+$": f"v{i}", "^id$": None if i % 2 else [i], "*": f"s{i}",
             "meta": {"^k$": i, "*": i, "when": datetime.date(2024, 1, i + 1)}} for i in range(6)]


def _expected_extras(i: int) -> dict:
    return {"^$": i, "^[\\w]+$": f"v{i}", "^id$": None if i % 2 else [i], "*": f"s{i}",
            "meta": {"^k$": i, "*": i, "when": f"2024-01-0{i + 1}"}}


@pytest.fixture
def odd_parquet(tmp_path):
    path = tmp_path / "odd.parquet"
    pl.DataFrame(_rows()).write_parquet(path)
    return path


@pytest.mark.parametrize("ext", [".jsonl", ".parquet", ".csv"])
def test_convert_keeps_every_odd_name_and_value(sftdata_cmd, odd_parquet, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    done = sftdata_cmd("convert", odd_parquet, "-o", out, "--to", "alpaca")
    assert done.returncode == 0, done.stderr
    back = tmp_path / "back.jsonl"  # read whatever was written back through sftdata
    again = sftdata_cmd("convert", out, "-o", back, "--to", "alpaca")
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in back.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6
    for i, row in enumerate(rows):
        got = {k: row.get(k) for k in _expected_extras(i)}
        want = _expected_extras(i)
        if ext == ".csv":  # a CSV cell is text: nested values as JSON text, numbers as digits
            got = {k: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v
                   for k, v in got.items()}
            want["^$"] = str(i)
        assert got == want


@pytest.mark.parametrize("command", ["filter", "dedup"])
def test_cleaning_commands_read_odd_names(sftdata_cmd, odd_parquet, tmp_path, command):
    out = tmp_path / "out.jsonl"
    done = sftdata_cmd(command, odd_parquet, "-o", out)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6
    assert [r["^[\\w]+$"] for r in rows] == [f"v{i}" for i in range(6)]
    assert [r["^$"] for r in rows] == list(range(6))

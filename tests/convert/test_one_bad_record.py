"""One pathological record is one reject, with its reason and location, and every other
record comes out: on the vectorised path and on the reference path alike, in JSON
Lines, JSON arrays and through the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sftdata.convert import read_canonical
from sftdata.rawrows import read_rows
from tests.convert.helpers import assert_reads_agree

GOOD = '{"instruction": "Say hi", "input": "", "output": "hi"}'
PATHOLOGICAL = {
    "too_deeply_nested": '{"instruction": "a", "output": "b", "x": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "too_deeply_nested:object": '{"instruction": "a", "output": "b", "x": ' + '{"k": ' * 10_000 + "1"
                                + "}" * 10_000 + "}",
    "number_too_large": '{"instruction": "a", "output": "b", "n": ' + "7" * 5_000 + "}",
    "non_finite_number": '{"instruction": "a", "output": "b", "score": NaN}',
    "non_finite_number:inf": '{"instruction": "a", "output": "b", "score": -Infinity}',
    "non_finite_number:overflow": '{"instruction": "a", "output": "b", "score": 1e999}',
    "bad_json": '{"instruction": "a", "outp',
    "not_a_string:output": '{"instruction": "a", "output": ["a", "list"]}',
}
SFTDATA = str(Path(sys.executable).parent / "sftdata")


def expected_reason(key: str) -> str:
    return key if key.startswith("not_a_string") else key.split(":")[0]


@pytest.mark.parametrize("case", PATHOLOGICAL)
def test_jsonl_one_bad_line_is_one_reject(tmp_path, case):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([GOOD, PATHOLOGICAL[case], GOOD]) + "\n", encoding="utf-8")
    read = assert_reads_agree(path)
    assert {r["location"]: r["reason"] for r in read.rejects} == {2: expected_reason(case)}
    assert read.frame.height == 2


@pytest.mark.parametrize("case", [c for c in PATHOLOGICAL if c != "bad_json"])
def test_json_array_one_bad_element_is_one_reject(tmp_path, case):
    path = tmp_path / "in.json"
    path.write_text("[" + ",\n".join([GOOD, PATHOLOGICAL[case], GOOD]) + "]", encoding="utf-8")
    read = assert_reads_agree(path)
    assert {r["location"]: r["reason"] for r in read.rejects} == {1: expected_reason(case)}
    assert read.frame.height == 2


def test_a_column_that_changes_type_between_rows(tmp_path):
    """A string in one row and a list or an object in others: each row is read, kept in
    meta as it was, and written to Parquet (as JSON text) and back without a loss."""
    rows = [GOOD[:-1] + ', "note": "text"}', GOOD[:-1] + ', "note": ["a", 1]}', GOOD[:-1] + ', "note": {"k": 2}}',
            GOOD[:-1] + ', "note": 3}']
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    read = assert_reads_agree(path)
    assert read.rejects == [] and read.frame.height == 4
    result = subprocess.run([SFTDATA, "convert", path, "-o", tmp_path / "o.parquet", "--to", "alpaca"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    back = [r.data["note"] for r in read_rows(tmp_path / "o.parquet")]
    assert back == ["text", ["a", 1], {"k": 2}, 3]


def test_a_utf8_bom_is_skipped_in_jsonl_and_json(tmp_path):
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\n" + GOOD + "\n").encode())
    read = assert_reads_agree(lines)
    assert (read.rejects, read.frame.height) == ([], 2)
    array = tmp_path / "bom.json"
    array.write_bytes(b"\xef\xbb\xbf" + f"[{GOOD}, {GOOD}]".encode())
    read = assert_reads_agree(array)
    assert (read.rejects, read.frame.height) == ([], 2)
    out = tmp_path / "out.jsonl"
    result = subprocess.run([SFTDATA, "convert", lines, "-o", out, "--to", "sharegpt"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and len(out.read_text().splitlines()) == 2


def test_every_pathological_line_in_one_file_through_the_command(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([GOOD, *PATHOLOGICAL.values(), GOOD]) + "\n", encoding="utf-8")
    for to in ("sharegpt", "openai", "alpaca", "canonical"):
        out = tmp_path / f"out-{to}.parquet"
        result = subprocess.run([SFTDATA, "convert", path, "-o", out, "--to", to], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert len(list(read_rows(out))) == 2
        rejects = [json.loads(x) for x in (tmp_path / ".rejects" / f"out-{to}.rejects.jsonl").read_text().splitlines()]
        assert [r["location"] for r in rejects] == list(range(2, 2 + len(PATHOLOGICAL)))


def test_deep_nesting_below_the_parser_limit_is_still_a_reject(tmp_path):
    """60-200 levels parse in Python but would make later steps recurse deeply: the
    limit (``sftdata.formats.common.MAX_DEPTH``) holds on both paths."""
    rows = [GOOD, GOOD[:-1] + ', "x": ' + "[" * 100 + "]" * 100 + "}", GOOD[:-1] + ', "x": [[["ok"]]]}']
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    read = assert_reads_agree(path)
    assert {r["location"]: r["reason"] for r in read.rejects} == {2: "too_deeply_nested"}
    assert read_canonical(path).frame.height == 2

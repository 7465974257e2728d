"""Nothing is lost: unknown message, turn and tool-call keys, Arrow-typed columns and
mixed columns come back out; what a target cannot hold is a reject with its reason.
Each case runs through the installed ``sftdata`` command, and compares both paths."""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sftdata.convert import convert_file, read_canonical, write_records
from sftdata.rawrows import read_rows
from sftdata.records import records_from_frame
from tests.convert.helpers import assert_reads_agree, assert_writes_agree, jsonl

SFTDATA = [str(Path(sys.executable).parent / "sftdata")]  # the installed command


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*SFTDATA, *map(str, args)], capture_output=True, text=True, timeout=120)


def rows_of(path: Path) -> list[dict]:
    return [r.data for r in read_rows(path)]


OPENAI = [
    {"messages": [
        {"role": "user", "content": "What is 2+2?", "id": "msg_1", "timestamp": 1712345678},
        {"role": "assistant", "content": "4", "reasoning_content": "Two and two make four.",
         "refusal": None, "id": "msg_2"},
    ]},
    {"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "Sunny.", "reasoning_content": "The tool said so."},
    ], "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]},
]


@pytest.mark.parametrize("ext", [".jsonl", ".json", ".parquet"])
def test_openai_round_trip_keeps_unknown_message_and_tool_call_keys(tmp_path, ext):
    src = jsonl(tmp_path / "in.jsonl", OPENAI)
    mid, out = tmp_path / f"mid{ext}", tmp_path / "out.jsonl"
    assert run("convert", src, "-o", mid, "--to", "openai").returncode == 0
    assert run("convert", mid, "-o", out, "--to", "openai").returncode == 0
    assert rows_of(out) == OPENAI
    assert_reads_agree(src)
    assert_reads_agree(mid)


def test_reasoning_content_is_a_message_field_not_meta(tmp_path):
    frame = read_canonical(jsonl(tmp_path / "in.jsonl", OPENAI)).frame
    record = records_from_frame(frame)[0]
    assert record["messages"][1]["extra"] == {"reasoning_content": "Two and two make four.",
                                              "refusal": None, "id": "msg_2"}
    assert record["meta"] == {}


def test_sharegpt_round_trip_keeps_unknown_turn_keys(tmp_path):
    rows = [{"conversations": [
        {"from": "system", "value": "Be brief.", "id": 0},
        {"from": "human", "value": "hi", "timestamp": "2024-05-01T10:00:00Z", "lang": "en"},
        {"from": "gpt", "value": "hello", "weight": 0.0, "score": 0.9},
    ], "source_id": "x1"}]
    src = jsonl(tmp_path / "in.jsonl", rows)
    for ext in (".jsonl", ".parquet"):
        mid = tmp_path / f"mid{ext}"
        assert run("convert", src, "-o", mid, "--to", "sharegpt").returncode == 0
        assert run("convert", mid, "-o", tmp_path / "out.jsonl", "--to", "sharegpt").returncode == 0
        # every column of the format is written, empty where absent
        assert rows_of(tmp_path / "out.jsonl") == [{"conversations": rows[0]["conversations"], "system": "",
                                                    "tools": "", "source_id": "x1"}]


def test_to_alpaca_a_colliding_column_is_a_reject_not_a_loss(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
             "input": "a context column", "output": "another output"},
            {"conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}], "tag": "ok"}]
    src = jsonl(tmp_path / "in.jsonl", rows)
    result = run("convert", src, "-o", tmp_path / "out.jsonl", "--to", "alpaca")
    assert result.returncode == 0, result.stderr
    assert rows_of(tmp_path / "out.jsonl") == [{"instruction": "q2", "input": "", "output": "a2", "system": "",
                                                "history": [], "tag": "ok"}]
    (reject,) = rows_of(tmp_path / ".rejects" / "out.rejects.jsonl")
    assert reject["reason"].startswith("not_representable_as_alpaca:field_collision:")
    assert_writes_agree(read_canonical(src).frame, "alpaca", tmp_path)


def test_messages_alpaca_cannot_hold_are_rejected(tmp_path):
    frame = read_canonical(jsonl(tmp_path / "in.jsonl", OPENAI[:1])).frame
    rejects = assert_writes_agree(frame, "alpaca", tmp_path)
    assert [r["reason"] for r in rejects] == ["not_representable_as_alpaca:message_fields"]


def test_parquet_columns_of_any_arrow_type_pass_through_meta(tmp_path):
    frame = pl.DataFrame({
        "instruction": ["a", "b"], "output": ["x", "y"],
        "day": [dt.date(2024, 1, 31), None],
        "at": [dt.datetime(2024, 1, 31, 12, 0, 0, 1), dt.datetime(2024, 2, 1)],
        "price": pl.Series([decimal.Decimal("12.50"), decimal.Decimal("0.01")], dtype=pl.Decimal(10, 2)),
        "blob": [b"\x00\xff", b"ok"],
        "tags": [[dt.date(2024, 1, 1)], []],
        "ratio": pl.Series([0.1, 0.25], dtype=pl.Float32),
    })
    src = tmp_path / "in.parquet"
    frame.write_parquet(src)
    out = tmp_path / "out.jsonl"
    result = run("convert", src, "-o", out, "--to", "openai")
    assert result.returncode == 0, result.stderr
    first = rows_of(out)[0]
    assert (first["day"], first["at"], first["price"], first["blob"], first["tags"]) == (
        "2024-01-31", "2024-01-31T12:00:00.000001", "12.50", "AP8=", ["2024-01-01"])
    assert first["ratio"] == float(pl.Series([0.1], dtype=pl.Float32).cast(pl.Float64)[0])
    assert rows_of(out)[1]["day"] is None
    assert_reads_agree(src)


def test_empty_meta_to_canonical_parquet_and_back(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", [{"instruction": "a", "output": "b"}])
    out = tmp_path / "x.parquet"
    result = run("convert", src, "-o", out, "--to", "canonical")
    assert result.returncode == 0, result.stderr
    (record,) = records_from_frame(read_canonical(out).frame)
    assert record["meta"] == {} and record["messages"][1]["content"] == "b"


def test_tools_and_free_form_json_stay_json_text_in_parquet(realworld, tmp_path):
    src = realworld / "glaive_toolcall_en_demo.json"
    mid, out = tmp_path / "mid.parquet", tmp_path / "out.jsonl"
    assert convert_file(src, mid, "openai").rejects == []
    assert pl.read_parquet_schema(mid)["tools"] == pl.String
    convert_file(mid, out, "openai")
    convert_file(src, tmp_path / "direct.jsonl", "openai")
    assert rows_of(out) == rows_of(tmp_path / "direct.jsonl")  # all 300 rows identical


def test_mixed_and_huge_values_in_one_column_round_trip_through_parquet(tmp_path):
    rows = [{"instruction": "a", "output": "b", "x": "text", "n": 2**70},
            {"instruction": "c", "output": "d", "x": ["a", "list"], "n": 1},
            {"instruction": "e", "output": "f", "x": {"an": "object"}, "n": -5}]
    src = jsonl(tmp_path / "in.jsonl", rows)
    mid, out = tmp_path / "mid.parquet", tmp_path / "out.jsonl"
    for step in (("convert", src, "-o", mid, "--to", "alpaca"), ("convert", mid, "-o", out, "--to", "alpaca")):
        result = run(*step)
        assert result.returncode == 0, result.stderr
    assert rows_of(out) == [{**r, "input": "", "system": "", "history": []} for r in rows]


def test_weights_json_cannot_hold_are_rejects_and_the_output_stays_json(tmp_path):
    lines = [
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": NaN}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": Infinity}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": '
        + "9" * 400 + "}]}",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1e400}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]}',
    ]
    src = jsonl(tmp_path / "in.jsonl", lines)
    result = run("convert", src, "-o", tmp_path / "out.jsonl", "--to", "openai")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert len(rows_of(tmp_path / "out.jsonl")) == 1
    reasons = {r["location"]: r["reason"] for r in rows_of(tmp_path / ".rejects" / "out.rejects.jsonl")}
    assert reasons == {1: "non_finite_number", 2: "non_finite_number", 3: "bad_weight", 4: "non_finite_number"}
    assert_reads_agree(src)


def test_nan_in_a_parquet_float_column_is_a_reject(tmp_path):
    src = tmp_path / "in.parquet"
    pl.DataFrame({"instruction": ["a", "b"], "output": ["x", "y"], "score": [float("nan"), 0.5]}).write_parquet(src)
    read = assert_reads_agree(src)
    assert [r["reason"] for r in read.rejects] == ["non_finite_number"]
    assert write_records(read.frame, tmp_path / "o.jsonl", "alpaca") == []

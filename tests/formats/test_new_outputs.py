"""Finding 5: LLaMA-Factory v1 samples and TRL prompt/completion as output formats, read
back to the same conversations (round trips over generated records and the real files)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from sftdata.convert import canonical_record, read_canonical, write_records
from sftdata.errors import RecordError
from sftdata.formats import FORMATS
from sftdata.formats.common import informative_weight
from sftdata.records import frame_from_records, records_from_frame
from tests.formats.strategies import openai_rows, sharegpt_rows


def _same_messages(a: list[dict], b: list[dict]) -> bool:
    norm = [[{**m, "weight": informative_weight(m["role"], m.get("weight"))} for m in x] for x in (a, b)]
    return norm[0] == norm[1]


def _through(row: dict, fmt: str, to: str) -> dict:
    record = canonical_record(FORMATS[fmt].to_canonical(row), "t")
    (record,) = records_from_frame(frame_from_records([record]))
    written = FORMATS[to].from_canonical(record)
    back = canonical_record(FORMATS[to].to_canonical(json.loads(json.dumps(written))), "t")
    (back,) = records_from_frame(frame_from_records([back]))
    return record, written, back


@settings(max_examples=200, deadline=None)
@given(openai_rows())
def test_llamafactory_v1_keeps_every_message(row):
    try:
        record, written, back = _through(row, "openai", "llamafactory_v1")
    except RecordError as exc:
        assert exc.reason == "not_representable_as_llamafactory_v1:tool_call_fields"  # call ids
        return
    assert all(isinstance(m["content"], list) and "loss_weight" in m for m in written["messages"])
    assert _same_messages(back["messages"], record["messages"]) and back["tools"] == record["tools"]


@settings(max_examples=200, deadline=None)
@given(sharegpt_rows())
def test_prompt_completion_keeps_every_message(row):
    try:
        record, written, back = _through(row, "sharegpt", "prompt_completion")
    except RecordError as exc:
        assert exc.reason.startswith(("not_representable_as_openai", "not_representable_as_prompt_completion"))
        return
    assert written["completion"] and written["completion"][-1]["role"] == "assistant"
    assert all(m["role"] != "user" for m in written["completion"])
    assert [m["content"] for m in back["messages"]] == [m["content"] for m in record["messages"]]


def test_weights_trl_cannot_express_are_rejects():
    record = canonical_record(FORMATS["openai"].to_canonical({"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 1},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "weight": 0}]}), "t")
    with pytest.raises(RecordError, match="not_representable_as_prompt_completion:weights"):
        FORMATS["prompt_completion"].from_canonical(record)


@pytest.mark.parametrize("to", ["llamafactory_v1", "prompt_completion"])
def test_real_files_convert_and_read_back(realworld, tmp_path, to):
    for source in sorted(realworld.glob("*.json*")):
        result = read_canonical(source)
        out = tmp_path / f"{source.stem}.{to}.jsonl"
        assert write_records(result.frame, out, to) == [], source.name
        again = read_canonical(out)
        assert again.format == ("openai" if to == "llamafactory_v1" else to) and not again.rejects
        assert [[m["content"] for m in ms] for ms in again.frame["messages"].to_list()] == \
            [[m["content"] for m in ms] for ms in result.frame["messages"].to_list()]


def test_v1_output_of_the_v1_demo_is_the_file_itself(realworld, tmp_path):
    out = tmp_path / "v1.jsonl"
    write_records(read_canonical(realworld / "v1_sft_demo.jsonl").frame, out, "llamafactory_v1")
    raw = [json.loads(line) for line in (realworld / "v1_sft_demo.jsonl").read_text().splitlines()]
    assert [json.loads(line) for line in out.read_text().splitlines()] == raw

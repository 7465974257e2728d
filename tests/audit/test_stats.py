"""compute_stats on small frames whose figures are known by construction."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from sftdata.audit import compute_stats, read_inputs
from sftdata.audit.columns import histogram
from sftdata.audit.deps import Unavailable, _module
from sftdata.audit.quality import _guard
from sftdata.audit.stats import samples
from sftdata.audit.verbs import leading_words
from sftdata.records import frame_from_records
from tests.audit.conftest import rec, write_json


def test_sources_turns_system_and_tools(small_frame):
    stats = compute_stats(small_frame, sample_count=2)
    json.dumps(stats)  # plain JSON types only: no numpy or polars values leak out
    assert stats["records"] == 6
    assert {s["source"]: s["records"] for s in stats["sources"]} == {"a.jsonl": 4, "b.jsonl": 1, "zh.json": 1}
    conv = stats["conversations"]
    # turns exclude the system message: 2, 2, 4, 4, 2, 2
    assert conv["turns"]["min"] == 2 and conv["turns"]["max"] == 4 and conv["turns"]["mean"] == 2.67
    assert sum(conv["turns"]["hist"]["counts"]) + conv["turns"]["hist"]["overflow"] == 6
    assert conv["multi_turn"]["records"] == 1
    assert conv["system_prompts"]["records"] == 1
    assert conv["system_prompts"]["top"] == [{"text": "You are terse.", "count": 1}]
    tools = conv["tools"]
    assert (tools["records_with_tool_specs"], tools["records_with_tool_calls"],
            tools["records_with_tool_turns"], tools["records"]) == (1, 1, 1, 1)
    assert tools["share"] == round(1 / 6, 4)


def test_lengths_in_characters_and_words(small_frame):
    lengths = compute_stats(small_frame, sample_count=0)["lengths"]
    assert lengths["token_unit"] == "words"
    instruction = lengths["instruction"]
    # the multi-turn record's instruction is both user turns joined by a newline
    assert instruction["chars"]["max"] == len("please  WRITE an essay on dogs")
    assert instruction["chars"]["min"] == len("识别并解释细胞理论")
    # each CJK character is a word; "Explain gravity\nWhy?" has 3 words
    assert instruction["tokens"]["max"] == 9  # 识别并解释细胞理论
    assert instruction["tokens"]["min"] == 3
    assert lengths["response"]["tokens"]["max"] == 10  # 细胞是生命的基本单位
    by_source = {r["source"]: r for r in lengths["by_source"]}
    assert by_source["zh.json"] == {"source": "zh.json", "records": 1, "instruction_chars": 9.0,
                                    "instruction_tokens": 9.0, "response_chars": 10.0,
                                    "response_tokens": 10.0}
    assert by_source["a.jsonl"]["records"] == 4


def test_leading_words_strip_openers_and_find_objects(small_frame):
    lw = compute_stats(small_frame, sample_count=0)["leading_words"]
    top = {t["word"]: t for t in lw["top"]}
    assert top["write"]["count"] == 3
    assert top["write"]["objects"] == [{"word": "essay", "count": 2}, {"word": "poem", "count": 1}]
    assert top["识别"]["objects"] == []
    assert lw["distinct"] == 4  # write, explain, what, 识别
    words = leading_words(pl.Series(["Could you please list five fruits", "  \"Summarize the text"]))
    assert words.rows() == [("list", "five"), ("summarize", "text")]


def test_exact_and_near_duplicates_come_from_the_dedup_steps(small_frame):
    dups = compute_stats(small_frame, sample_count=0)["duplicates"]
    assert dups["available"], dups
    assert dups["exact"]["duplicates"] == 1
    assert dups["exact"]["clusters"][0]["text"] == "Please write an essay on dogs"
    assert dups["near"]["duplicates"] == 0
    assert dups["unique_share"] == round(5 / 6, 4)


def test_empty_input_counts_only_alpaca_records_that_were_read(tmp_path):
    alpaca = write_json(tmp_path / "al.json", [
        {"instruction": "a", "input": "", "output": "x"},
        {"instruction": "b", "output": "x"},
        {"instruction": "c", "input": None, "output": "x"},
        {"instruction": "d", "input": "some input", "output": "x"},
        {"instruction": "e", "input": ""},  # rejected: no output
    ])
    sharegpt = write_json(tmp_path / "sg.json", [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])
    read = read_inputs([alpaca, sharegpt])
    stats = compute_stats(read.frame, inputs=read.inputs, sample_count=0)
    empty = stats["empty_input"]
    assert (empty["applicable"], empty["empty"], empty["share"]) == (4, 3, 0.75)
    assert list(empty["by_source"]) == ["al.json"]
    assert stats["formats"] == {"alpaca": 4, "sharegpt": 1}
    assert read.inputs[0].rejects_by_reason == {"missing_field:output": 1}
    only_sharegpt = read_inputs([sharegpt])
    assert compute_stats(only_sharegpt.frame, inputs=only_sharegpt.inputs)["empty_input"]["available"] is False


def test_samples_are_seeded():
    frame = frame_from_records([rec([("user", f"question {i}"), ("assistant", f"answer {i}")])
                                for i in range(50)])
    first = [s["index"] for s in samples(frame, 5, seed=3)]
    assert first == [s["index"] for s in samples(frame, 5, seed=3)]
    assert len(set(first)) == 5
    others = {tuple(s["index"] for s in samples(frame, 5, seed=k)) for k in range(5)}
    assert len(others) > 1
    assert len(samples(frame, 500, seed=0)) == 50
    one = samples(frame, 1, seed=0)[0]
    assert one["messages"][0]["content"] == f"question {one['index']}"


def test_histogram_keeps_every_value():
    values = np.array([1] * 50 + list(range(2, 200)) + [10_000])
    hist = histogram(values, integer=True)
    assert sum(hist["counts"]) + hist["overflow"] == values.size
    assert hist["overflow"] >= 1
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert histogram(np.array([], dtype=int))["counts"] == []


def test_missing_step_module_makes_a_section_unavailable():
    section = _guard(lambda: {"n": _module("sftdata.steps.no_such_step")})
    assert section["available"] is False
    assert "sftdata.steps.no_such_step" in section["reason"]
    with pytest.raises(Unavailable):
        _module("sftdata.steps.no_such_step")


def test_empty_frame_gives_zero_figures():
    stats = compute_stats(frame_from_records([]), sample_count=3)
    assert stats["records"] == 0
    assert stats["lengths"]["instruction"]["chars"]["count"] == 0
    assert stats["samples"] == []


def test_filter_and_refusal_sections_run_the_real_filters():
    frame = frame_from_records([
        rec([("user", "Name a colour of the sky on a clear day, please"),
             ("assistant", "As an AI language model, I cannot see the sky.")]),
        rec([("user", "Repeat after me: the cat sat on the mat"),
             ("assistant", "Repeat after me: the cat sat on the mat")]),
        rec([("user", "Give one prime number larger than ten"), ("assistant", "Thirteen is prime.")]),
    ])
    stats = compute_stats(frame, sample_count=0)
    filters = stats["filters"]
    assert filters["available"], filters
    assert filters["failed"] == {}, filters["failed"]
    assert filters["by_filter"]["refusal"] == 1 and filters["by_filter"]["echo"] == 1
    assert filters["records_hit"] == 2 and filters["rate"] == round(2 / 3, 4)
    assert sum(filters["by_reason"].values()) == sum(filters["by_filter"].values())
    refusals = stats["refusals"]
    assert refusals["records"] == 1 and refusals["examples"][0]["response"].startswith("As an AI")


def test_subset_estimates_say_so():
    frame = frame_from_records([rec([("user", f"Describe item number {i} in detail"),
                                     ("assistant", f"Item {i} is a small round object made of wood.")])
                                for i in range(30)])
    stats = compute_stats(frame, sample_count=0, estimate_limit=10, seed=2)
    assert stats["filters"]["sample"] == {"records": 10, "of": 30}
    assert sum(stats["languages"]["counts"].values()) == 10
    assert stats["duplicates"]["exact"]["duplicates"] == 0  # exact sections use all 30
    full = compute_stats(frame, sample_count=0, estimate_limit=None)
    assert full["filters"]["sample"] is None and sum(full["languages"]["counts"].values()) == 30


def test_a_crashing_section_is_reported_not_fatal(caplog):
    def broken() -> dict:
        raise IndexError("index 0 is out of bounds")

    section = _guard(broken)
    assert section == {"available": False, "reason": "failed (IndexError: index 0 is out of bounds)"}
    assert "audit section failed" in caplog.text


def test_reasoning_content_is_counted_and_shown(tmp_path):
    """reasoning_content (and other message keys) read from OpenAI data reach the audit."""
    import json as _json

    from sftdata.audit import read_inputs, render_html

    path = tmp_path / "r.jsonl"
    rows = [{"messages": [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4", "reasoning_content": "Two plus two.", "id": "m1"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    path.write_text("".join(_json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    read = read_inputs([path])
    stats = compute_stats(read.frame, inputs=read.inputs, sample_count=2)
    conv = stats["conversations"]
    assert (conv["reasoning"]["records"], conv["reasoning"]["share"]) == (1, 0.5)
    assert conv["message_extra"] == {"records": 1, "names": ["reasoning_content", "id"]}
    shown = [m.get("reasoning") for s in stats["samples"] for m in s["messages"]]
    assert "Two plus two." in shown
    assert "reasoning: Two plus two." in render_html(stats)

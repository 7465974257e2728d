"""Decontamination: 13-gram overlap, the short-prompt fallback, several eval files in
different formats, and the detail naming the eval set and n-gram."""

from __future__ import annotations

import json

import pytest

from sftdata.errors import UserError
from sftdata.steps.registry import build_step
from tests.steps.helpers import frame_of

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?")


@pytest.fixture
def evals(tmp_path):
    """An Alpaca JSON eval set and a ShareGPT JSONL one."""
    alpaca = tmp_path / "gsm_test.json"
    alpaca.write_text(json.dumps([
        {"instruction": QUESTION, "input": "", "output": "72"},
        {"instruction": "What is the capital city of Australia today?", "input": "", "output": "Canberra"},
        {"instruction": "Hi", "input": "", "output": "Hello"},
    ]), encoding="utf-8")
    sharegpt = tmp_path / "zh_eval.jsonl"
    sharegpt.write_text(json.dumps({"conversations": [
        {"from": "human", "value": "请解释细胞理论和日心说这两个科学理论的主要内容"},
        {"from": "gpt", "value": "..."}]}, ensure_ascii=False) + "\n", encoding="utf-8")
    return [str(alpaca), str(sharegpt)]


def test_overlaps_are_dropped_with_eval_set_and_ngram(evals):
    pairs = [
        ("Solve: " + QUESTION.upper().replace(",", " ,"), "Natalia sold 72 clips."),  # case/punct changed
        ("A word problem", "Here it is: natalia sold clips to 48 of her friends in april and then she sold half"),
        ("Tell me: what is the capital city of Australia today? Thanks", "Canberra."),  # short eval prompt
        ("请解释细胞理论和日心说这两个科学理论的主要内容，谢谢", "好的。"),
        ("Say hi", "Hi"),  # eval prompts under min_tokens are ignored
        ("Natalia sold clips", "A different story about clips and friends."),
    ]
    result = build_step("decontaminate", {"against": evals})(frame_of(pairs))
    got = dict(zip(result.rejected["id"], result.rejected["detail"]))
    assert sorted(got) == ["r0", "r1", "r2", "r3"]
    first = json.loads(got["r0"])
    assert first["eval_set"] == "gsm_test" and first["n"] == 13
    assert first["ngram"] in QUESTION.lower().replace(",", "").replace("?", "").replace(".", "")
    assert len(first["ngram"].split()) == 13
    short = json.loads(got["r2"])
    assert short["ngram"] == "what is the capital city of australia today" and short["n"] == 8
    assert json.loads(got["r3"])["eval_set"] == "zh_eval"
    assert set(result.rejected["reason"].to_list()) == {"contaminated"}


def test_fields_and_n(evals):
    pairs = [("unrelated prompt words here", QUESTION)]
    assert build_step("decontaminate", {"against": evals, "fields": "prompt"})(frame_of(pairs)).rejected.height == 0
    assert build_step("decontaminate", {"against": evals, "fields": "response"})(frame_of(pairs)).rejected.height == 1
    near = [("q", "Natalia sold clips to 48 of her friends in April. Then something else entirely")]
    assert build_step("decontaminate", {"against": evals, "n": 8})(frame_of(near)).rejected.height == 1
    assert build_step("decontaminate", {"against": evals})(frame_of(near)).rejected.height == 0


def test_missing_eval_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        build_step("decontaminate", {"against": [str(tmp_path / "nope.json")]})(frame_of([("a", "b")]))

"""The judge against a real OpenAI-compatible server: llama.cpp's, serving the bundled
SmolLM2 GGUF on 127.0.0.1 (started by the fixture of the generator's integration test)."""

from __future__ import annotations

import json

import pytest

from sftdata.records import frame_from_records
from sftdata.steps.registry import build_step
from tests.generate.test_integration_llamacpp import llama_server  # noqa: F401 - fixture

from .helpers import metas, records

pytestmark = pytest.mark.integration


def test_judge_scores_through_llama_cpp(llama_server, score_cache):  # noqa: F811
    frame = frame_from_records(records()[:4])
    params = {"base_url": llama_server, "rubric": "deita_quality", "concurrency": 2, "max_tokens": 8,
              "request_timeout": 180, "progress": False}
    result = build_step("judge", params)(frame)
    assert result.kept.height + result.rejected.height == 4
    cached = [json.loads(line)["value"] for p in score_cache.glob("judge-*.jsonl")
              for line in p.read_text().splitlines()]
    assert len(cached) == 4 and all(v["text"] for v in cached)
    # llama.cpp returns token log-probabilities: the G-Eval path is exercised for real.
    assert any(v["logprobs"] for v in cached)
    for meta in metas(result.kept):
        assert 1 <= meta["judge"] <= 6
    for reason, detail in zip(result.rejected["reason"], result.rejected["detail"]):
        assert reason == "judge_unparseable" and json.loads(detail)["raw"] is not None
    text_only = build_step("judge", {**params, "logprobs": False})(frame)
    assert text_only.kept.height + text_only.rejected.height == 4
    for meta in metas(text_only.kept):
        assert meta["judge"] in (1, 2, 3, 4, 5, 6)  # read from the text: a whole number

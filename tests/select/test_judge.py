"""judge: rubrics in the sandbox, robust parsing, an endpoint on loopback, resume."""

from __future__ import annotations

import json
import math

import pytest

from sftdata.errors import UserError
from sftdata.records import frame_from_records
from sftdata.steps.judge_parse import from_logprobs, parse_score
from sftdata.steps.registry import build_step
from sftdata.steps.score_judge import Rubric, rubric_text

from .helpers import PAIRS, details, metas, records
from .judge_server import JudgeServer


@pytest.mark.parametrize("text, score, how", [
    ("Score: 4\nAccurate and complete.", 4.0, "labelled"),
    ("**Rating**: 3.5/5", 3.5, "labelled"),
    ('Here: {"score": 2, "reason": "thin"}', 2.0, "json"),
    ('{"score": "5"}', 5.0, "json"),
    ("4", 4.0, "leading"),
    ("5 out of 5 - excellent", 5.0, "leading"),
    ("I would rate this response 1 because it is wrong.", 1.0, "labelled"),
])
def test_scores_in_text(text, score, how):
    parsed = parse_score(text, None, 0, 5)
    assert (parsed.score, parsed.how) == (score, how)


@pytest.mark.parametrize("text, why", [
    ("The response is good.", "no score in the answer"),
    ("Score: 9", "out of range 0-5: 9"),
    ("[3]...[50987654...(no more than 5 lines)", "no score in the answer (numbers: 3, 50987654, 5)"),
    ("", "no score in the answer"),
])
def test_unparseable_answers_say_why(text, why):
    parsed = parse_score(text, None, 0, 5)
    assert parsed.score is None and parsed.why == why


def _position(token, alternatives):
    return {"token": token, "logprob": math.log(alternatives[token]),
            "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alternatives.items()]}


def test_geval_expected_score_from_logprobs():
    lp = [_position("Score", {"Score": 0.9, "The": 0.1}), _position(":", {":": 1.0}),
          _position(" 4", {" 4": 0.6, "5": 0.2, "3": 0.1, "x": 0.1})]
    # Renormalised over score tokens only: (4*.6 + 5*.2 + 3*.1) / .9
    assert from_logprobs(lp, 0, 5) == pytest.approx((2.4 + 1.0 + 0.3) / 0.9)
    assert parse_score("Score: 4", lp, 0, 5).how == "logprobs"
    assert parse_score("Score: 4", lp, 0, 5, use_logprobs=False).score == 4.0
    assert from_logprobs([_position("9", {"9": 1.0})], 0, 5) is None  # off the scale


def test_builtin_rubrics_render_and_set_their_scale():
    record = records()[0]
    for name, scale in (("alpagasus", (0, 5)), ("deita_complexity", (1, 6)), ("deita_quality", (1, 6))):
        rubric = Rubric(rubric_text(name, None), name)
        (message,), prefill = rubric.prompt(record)
        assert (rubric.lo, rubric.hi) == scale and prefill
        assert record["messages"][0]["content"] in message["content"]
        assert (record["messages"][1]["content"] in message["content"]) == (name != "deita_complexity")


def test_user_rubrics_render_sandboxed(tmp_path):
    evil = tmp_path / "evil.j2"
    evil.write_text("{% set scale_min = 0 %}{% set scale_max = 1 %}"
                    "{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    with pytest.raises(UserError, match="SecurityError|undefined"):
        Rubric(evil.read_text(), str(evil))
    no_scale = tmp_path / "plain.j2"
    no_scale.write_text("Rate {{ response }}")
    with pytest.raises(UserError, match="scale_min"):
        build_step("judge", {"rubric_file": str(no_scale)})
    with pytest.raises(UserError, match="not found"):
        build_step("judge", {"rubric_file": str(tmp_path / "missing.j2")})


def _quality(prompt: str) -> str:
    """The scripted judge: 5 for Paris, junk for spiders, 3 otherwise."""
    if "Paris" in prompt:
        return 'Score: 5\n{"why": "correct"}'
    if "spider" in prompt:
        return "[3]...[50987654"
    return "3 - fine"


def test_endpoint_judge_scores_rejects_and_resumes(monkeypatch, score_cache):
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-value-123")
    frame = frame_from_records(records())
    params = {"base_url": None, "model": "judge-model", "api_key_env": "JUDGE_KEY",
              "concurrency": 4, "progress": False}
    with JudgeServer(_quality, fail_first=2, latency=0.05) as server:
        params["base_url"] = server.url
        result = build_step("judge", params)(frame)
        assert server.max_in_flight > 1  # concurrent requests
        assert server.requests == len(PAIRS) + 2  # two 429s retried
        assert server.authorizations == {"Bearer sk-secret-value-123"}
        body = server.bodies[-1]
        assert body["temperature"] == 0 and body["logprobs"] is True and body["model"] == "judge-model"
    scores = {i: m.get("judge") for i, m in zip(result.kept["id"].to_list(), metas(result.kept))}
    assert scores == {"r0": 5.0, "r1": 3.0, "r2": 3.0, "r3": 3.0, "r5": 3.0}
    assert result.rejected["reason"].to_list() == ["judge_unparseable"]
    assert details(result.rejected)[0] == {"why": "no score in the answer (numbers: 3, 50987654)",
                                           "raw": "[3]...[50987654"}
    cached = "".join(p.read_text() for p in score_cache.glob("judge-*.jsonl"))
    assert "sk-secret" not in cached and "sk-secret" not in json.dumps(result.report.model_dump())
    # Resume: the same step with the server gone answers from the cache.
    again = build_step("judge", params)(frame)
    assert metas(again.kept) == metas(result.kept) and again.rejected.height == 1


def test_endpoint_logprobs_give_a_geval_score_and_refusal_falls_back_to_text():
    frame = frame_from_records(records()[:2])

    def logprobs(prompt):
        return [_position("4", {"4": 0.5, "5": 0.5})]

    with JudgeServer(lambda p: "4", logprobs=logprobs) as server:
        result = build_step("judge", {"base_url": server.url, "model": "m", "progress": False})(frame)
    assert [m["judge"] for m in metas(result.kept)] == [4.5, 4.5]
    with JudgeServer(lambda p: "Score: 2", logprobs=logprobs, refuse_logprobs=True) as server:
        result = build_step("judge", {"base_url": server.url, "model": "m", "progress": False,
                                      "cache": False})(frame)
        assert [m["judge"] for m in metas(result.kept)] == [2.0, 2.0]


def test_a_dead_endpoint_stops_with_one_line_before_any_record_is_rejected():
    """Rejecting every record for an endpoint that is not running would empty the output;
    the pre-flight check stops the step with a one-line user error instead."""
    from sftdata.generate.backends import EndpointDown

    frame = frame_from_records(records()[:2])
    step = build_step("judge", {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0,
                                "request_timeout": 2, "progress": False, "cache": False})
    with pytest.raises(EndpointDown) as caught:
        step(frame)
    assert "127.0.0.1:9" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_embedded_judge_scores_offline():
    pytest.importorskip("torch")
    result = build_step("judge", {"rubric": "alpagasus", "progress": False})(frame_from_records(records()[:3]))
    assert result.kept.height + result.rejected.height == 3
    for meta in metas(result.kept):
        assert 0 <= meta["judge"] <= 5
    for reason in result.rejected["reason"].to_list():
        assert reason == "judge_unparseable"

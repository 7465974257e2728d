"""The Self-Instruct stages over a scripted backend: filters, parsing, records, rejects."""

import json

from sftdata.generate import GenerateConfig, generate
from sftdata.generate.backends import BackendError
from sftdata.generate.seeds import load_seeds
from sftdata.io import read_complete_lines

from .helpers import ScriptedBackend, good_reply, words


def config(tmp_path, **kw):
    kw.setdefault("num", 6)
    kw.setdefault("base_url", "http://unused.invalid/v1")
    kw.setdefault("concurrency", 3)
    return GenerateConfig(output=tmp_path / "out.jsonl", **kw)


def rejects(tmp_path):
    return read_complete_lines(tmp_path / ".rejects" / "out.rejects.jsonl")


def test_writes_exactly_num_canonical_records(tmp_path):
    backend = ScriptedBackend(good_reply(1))
    summary = generate(config(tmp_path, num=7), backend=backend)
    records = read_complete_lines(tmp_path / "out.jsonl")
    assert summary.complete and summary.records == len(records) == 7
    assert len({r["id"] for r in records}) == 7
    for r in records:
        assert r["source"] == "self_instruct"
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        meta = r["meta"]
        assert r["messages"][0]["content"] == f"{meta['instruction']}\n{meta['input']}"
        assert meta["model"] == "scripted-model"
        assert set(meta["request_ids"]) == {"bootstrap", "classify", "instances"}
        assert meta["usage"]["classify"] == {"prompt_tokens": 10, "completion_tokens": 5}
    assert summary.prompt_tokens == 10 * summary.requests


def test_filters_reject_with_reasons_and_similarity_detail(tmp_path):
    seed = load_seeds()[0][0].instruction
    items = [
        "Draw a picture of a cat sitting on a mat.",  # blocklisted word
        "Hi there.",  # too few words
        "- Summarise the story of any novel you like.",  # starts with punctuation
        seed.replace(".", "!"),  # near-copy of a seed
        "Describe the life cycle of a monarch butterfly.",
        "Describe the life cycle of a monarch butterfly please.",  # near-copy of the one above
    ]
    reply = good_reply(2)

    def scripted(stage, prompt):
        if stage == "bootstrap":
            return "\n".join(f"{i}. {t}" for i, t in enumerate(items, start=7))
        return reply(stage, prompt)

    summary = generate(config(tmp_path, num=1, max_requests=3), backend=ScriptedBackend(scripted))
    reasons = {r["record"]["instruction"]: r for r in rejects(tmp_path) if r["stage"] == "generate:filter"}
    assert reasons[items[0]]["reason"] == "unproducible_output"  # the self_instruct filter's codes
    assert reasons[items[1]]["reason"] == "instruction_too_short"
    assert reasons[items[2]]["reason"] == "starts_with_punctuation"
    assert reasons[items[3]]["reason"] == "too_similar"
    assert reasons[items[3]]["detail"]["most_similar"] == seed
    assert reasons[items[3]]["detail"]["rouge_l"] == 1.0
    assert reasons[items[5]]["reason"] == "too_similar"
    assert reasons[items[5]]["detail"]["most_similar"] == items[4]
    record = read_complete_lines(tmp_path / "out.jsonl")[0]
    assert record["meta"]["instruction"] == items[4]
    assert summary.rejects_by_reason["too_similar"] == 2


def test_classification_tasks_are_generated_output_first(tmp_path):
    backend = ScriptedBackend(good_reply(3, classify="Yes"))
    generate(config(tmp_path, num=3), backend=backend)
    stages = [s for s, _ in backend.calls]
    assert "output_first" in stages and "input_first" not in stages
    records = read_complete_lines(tmp_path / "out.jsonl")
    assert all(r["meta"]["is_classification"] for r in records)


def test_bad_instances_and_malformed_completions_are_counted_and_skipped(tmp_path):
    reply = good_reply(4)
    turn = {"n": 0}

    def scripted(stage, prompt):
        if stage == "input_first":
            turn["n"] += 1
            kind = turn["n"] % 5
            if kind == 1:
                return "Input: same\nOutput: same"
            if kind == 2:
                return "Input: x\nOutput: one\nInput: x\nOutput: two"
            if kind == 3:
                return "Input: an input but no output"
            if kind == 4:
                return BackendError("malformed_completion")
        return reply(stage, prompt)

    summary = generate(config(tmp_path, num=4), backend=ScriptedBackend(scripted))
    assert summary.records == 4
    got = summary.rejects_by_reason
    assert got["output_equals_input"] >= 1 and got["conflicting_outputs"] >= 1
    assert got["unparsed_instance"] >= 1 and got["malformed_completion"] >= 1
    assert sum(got.values()) == len(rejects(tmp_path))


def test_request_budget_stops_a_hopeless_model(tmp_path):
    backend = ScriptedBackend(lambda stage, prompt: "I cannot help with that.")
    summary = generate(config(tmp_path, num=5, max_requests=9), backend=backend)
    assert not summary.complete and summary.records == 0
    assert summary.requests == 9 == len(backend.calls)


def test_cut_off_bootstrap_drops_its_last_item(tmp_path):
    def scripted(stage, prompt):
        if stage == "bootstrap":
            return "5. Describe how clouds form over mountains.\n6. Explain the rules of chess in"
        return good_reply(5)(stage, prompt)

    backend = ScriptedBackend(scripted, finish_reason="length")
    generate(config(tmp_path, num=1, max_requests=3), backend=backend)
    records = read_complete_lines(tmp_path / "out.jsonl")
    assert [r["meta"]["instruction"] for r in records] == ["Describe how clouds form over mountains."]


def test_resume_needs_same_options_and_continues(tmp_path):
    generate(config(tmp_path, num=3), backend=ScriptedBackend(good_reply(6)))
    first = (tmp_path / "out.jsonl").read_text()
    summary = generate(config(tmp_path, num=5), backend=ScriptedBackend(good_reply(7)))
    after = (tmp_path / "out.jsonl").read_text()
    assert after.startswith(first) and summary.records == 5 and summary.new_records == 2
    state = json.loads((tmp_path / "out.jsonl.state.json").read_text())
    assert state["accepted"] == 5 and state["totals"]["runs"] == 2


def test_user_seeds_in_sharegpt_format(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    rows = [{"conversations": [{"from": "human", "value": f"Explain topic {words(__import__('random').Random(i), 3)}"},
                               {"from": "gpt", "value": "An answer."}]} for i in range(3)]
    rows.append({"conversations": "broken"})
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    backend = ScriptedBackend(good_reply(8))
    summary = generate(config(tmp_path, num=1, seeds=seeds), backend=backend)
    assert summary.seed_tasks == 3 and sum(summary.seed_rejects.values()) == 1
    bootstrap_prompt = next(p for s, p in backend.calls if s == "bootstrap")
    assert "Explain topic" in bootstrap_prompt


class _OneAtATime(ScriptedBackend):
    """A backend that serves one request at a time (as the embedded model does) and
    records how many were ever in flight together."""

    max_in_flight = 1

    def __init__(self, reply):
        super().__init__(reply)
        self.now = self.most = 0

    async def complete(self, messages, **kw):
        import asyncio

        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.001)  # let other workers run, were there any
            return await super().complete(messages, **kw)
        finally:
            self.now -= 1


def test_a_one_at_a_time_backend_gets_one_worker_and_no_wasted_requests(tmp_path):
    serial = _OneAtATime(good_reply(5))
    summary = generate(config(tmp_path / "a", num=4, concurrency=8), backend=serial)
    assert summary.records == 4 and serial.most == 1
    wide = ScriptedBackend(good_reply(5))
    wider = generate(config(tmp_path / "b", num=4, concurrency=8), backend=wide)
    assert summary.requests <= wider.requests  # the queued extra requests are not made

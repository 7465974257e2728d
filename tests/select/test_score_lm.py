"""perplexity and ifd: the tokens the trainer trains, batched = one by one, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sftdata.convert import read_canonical
from sftdata.records import frame_from_records, records_from_frame
from sftdata.steps import lm_losses
from sftdata.steps.registry import build_step

from .helpers import details, frame, metas, records

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    return lm_losses.load_lm(str(tiny_model_dir), device="cpu")


def realworld_records(realworld, n=2):
    out = []
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "glaive_toolcall_en_demo.json",
                 "v1_sft_demo.jsonl"):
        out += records_from_frame(read_canonical(realworld / name).frame.head(n))
    return out


@pytest.mark.parametrize("packing", [True, False])
def test_batched_losses_equal_one_by_one_on_real_files(tiny_lm, realworld, packing):
    recs = realworld_records(realworld)
    examples, reasons, _ = lm_losses.tokenise_all(tiny_lm.tokenizer, recs, 256, "assistant")
    examples = [e for e in examples if e is not None]
    assert len(examples) == len(recs)
    batched = lm_losses.mean_losses(tiny_lm, examples, batch_tokens=600, packing=packing)
    reference = lm_losses.losses_one_by_one(tiny_lm, examples)
    np.testing.assert_allclose(batched, reference, rtol=1e-4)


def test_perplexity_is_the_trainers_held_out_loss(tiny_lm, tiny_model_dir):
    from sftdata.trainer import evaluate_loss

    recs = records()
    result = build_step("perplexity", {"model": str(tiny_model_dir), "progress": False})(frame_from_records(recs))
    for record, meta in zip(recs, metas(result.kept)):
        loss = evaluate_loss(tiny_lm.model, [record], tiny_lm.tokenizer)
        assert meta["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
        assert meta["perplexity_parts"]["loss"] == pytest.approx(loss, rel=1e-4)


def test_ifd_divides_the_conditioned_loss_by_the_answer_alone(tiny_lm, tiny_model_dir, realworld):
    recs = realworld_records(realworld, 1)
    result = build_step("ifd", {"model": str(tiny_model_dir), "progress": False,
                                "max_length": 256})(frame_from_records(recs))
    assert result.kept.height == len(recs)
    cond, _, cut = lm_losses.tokenise_all(tiny_lm.tokenizer, recs, 256, "assistant")
    alone, _, _ = lm_losses.tokenise_all(tiny_lm.tokenizer, recs, 256, "assistant",
                                         lm_losses.answer_only_variants)
    want_cond = lm_losses.losses_one_by_one(tiny_lm, cond)
    want_alone = lm_losses.losses_one_by_one(tiny_lm, alone)
    for meta, c, a, ec, ea, truncated in zip(metas(result.kept), want_cond, want_alone, cond, alone, cut):
        if not truncated:  # both sides score exactly the same answer tokens
            assert [t for t, w in zip(ec.targets, ec.weights) if w] == [t for t, w in zip(ea.targets, ea.weights) if w]
        assert meta["ifd_parts"]["loss"] == pytest.approx(c, rel=1e-4)
        assert meta["ifd_parts"]["answer_only_loss"] == pytest.approx(a, rel=1e-4)
        assert meta["ifd"] == pytest.approx(c / a, rel=1e-4)


def test_unscorable_records_and_thresholds_are_rejects_with_scores(tiny_model_dir):
    recs = records()
    recs.append({"id": "no_answer", "messages": [{"role": "user", "content": "Hello?"}],
                 "source": "test", "meta": {}})
    base = build_step("perplexity", {"model": str(tiny_model_dir), "progress": False})(frame_from_records(recs))
    assert base.report.drops == {"unscorable:nothing_to_train": 1}
    scores = sorted(m["perplexity"] for m in metas(base.kept))
    cut = scores[len(scores) // 2]
    result = build_step("perplexity", {"model": str(tiny_model_dir), "progress": False,
                                       "drop_above": cut})(frame_from_records(recs))
    high = result.rejected.filter(result.rejected["reason"] == "perplexity_too_high")
    assert high.height == sum(s > cut for s in scores) > 0
    for meta, detail in zip(metas(high), details(high)):
        assert meta["perplexity"] == detail["perplexity"] > cut  # the reject keeps its score
    assert result.kept.height + result.rejected.height == len(recs)


def test_scores_resume_from_the_cache(tiny_model_dir, monkeypatch, score_cache):
    recs = records()
    params = {"model": str(tiny_model_dir), "progress": False}
    first = build_step("ifd", params)(frame_from_records(recs[:3]))
    assert list(score_cache.glob("ifd-*.jsonl"))
    scored = []
    real = lm_losses.tokenise_all

    def counting(tokenizer, batch, *args, **kwargs):
        scored.extend(r["id"] for r in batch)
        return real(tokenizer, batch, *args, **kwargs)

    monkeypatch.setattr(lm_losses, "tokenise_all", counting)
    second = build_step("ifd", params)(frame_from_records(recs))
    assert sorted(set(scored)) == ["r3", "r4", "r5"]  # only the records not scored before
    assert metas(second.kept)[:3] == metas(first.kept)

    def broken(*args, **kwargs):
        raise AssertionError("the model must not be loaded when every score is cached")

    monkeypatch.setattr(lm_losses, "load_lm", broken)
    again = build_step("ifd", params)(frame_from_records(recs))
    assert metas(again.kept) == metas(second.kept)
    # Same id, different content: not the cached score.
    changed = records()
    changed[0]["messages"][1]["content"] = "Paris, obviously, as everyone knows."
    with pytest.raises(AssertionError, match="must not be loaded"):
        build_step("ifd", params)(frame_from_records(changed))


@pytest.mark.slow
def test_bundled_model_ifd_on_real_alpaca(realworld):
    recs = records_from_frame(read_canonical(realworld / "alpaca_en_demo.json").frame.head(16))
    result = build_step("ifd", {"progress": False, "max_length": 512})(frame_from_records(recs))
    values = [m["ifd"] for m in metas(result.kept)]
    assert len(values) == 16
    # Real instructions help a real instruction-tuned model predict their answers.
    assert np.median(values) < 1.0
    assert all(0 < v < 3 for v in values)

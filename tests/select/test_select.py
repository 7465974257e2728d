"""select: budgets, directions, combinations, per source, diversity; not_selected rejects."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from sftdata.records import frame_from_records
from sftdata.steps import diversity
from sftdata.steps.registry import build_step

from .helpers import PAIRS, details, metas, records


def scored(values, key="ifd", sources=None):
    recs = records([(f"question {i}", f"answer {i}") for i in range(len(values))],
                   meta=[{} if v is None else {key: v} for v in values])
    for r, s in zip(recs, sources or []):
        r["source"] = s
    return frame_from_records(recs)


def ids(frame) -> list[str]:
    return frame["id"].to_list()


def test_top_keeps_the_highest_and_rejects_the_rest_with_scores():
    result = build_step("select", {"by": "ifd", "top": 2})(scored([0.5, 0.9, None, 0.7, 0.1]))
    assert ids(result.kept) == ["r1", "r3"]  # input order is kept
    assert result.report.drops == {"not_selected": 3}
    by_id = dict(zip(ids(result.rejected), details(result.rejected)))
    assert by_id["r0"] == {"by": "ifd", "score": 0.5, "rank": 3, "scores": {"ifd": 0.5}}
    assert by_id["r2"]["score"] is None and by_id["r2"]["rank"] == 5  # unscored ranks last
    assert metas(result.rejected)[0] == {"ifd": 0.5}  # the record keeps its meta


def test_fraction_and_lowest():
    frame = scored([5.0, 1.0, 3.0, 2.0])
    assert ids(build_step("select", {"by": "ifd", "fraction": 0.5, "lowest": True})(frame).kept) == ["r1", "r3"]
    assert ids(build_step("select", {"by": "ifd", "fraction": 0.5})(frame).kept) == ["r0", "r2"]


def test_per_source_budget():
    frame = scored([1, 2, 3, 4, 10, 20], sources=["a", "a", "a", "a", "b", "b"])
    kept = build_step("select", {"by": "ifd", "fraction": 0.5, "per_source": True})(frame).kept
    assert ids(kept) == ["r2", "r3", "r5"]
    assert ids(build_step("select", {"by": "ifd", "top": 3})(frame).kept) == ["r3", "r4", "r5"]


def test_weighted_combination_on_rank_scale_and_dotted_keys():
    recs = records([(f"q{i}", f"a{i}") for i in range(4)], meta=[
        {"judge": 5, "ifd_parts": {"loss": 0.1}}, {"judge": 1, "ifd_parts": {"loss": 2.0}},
        {"judge": 4, "ifd_parts": {"loss": 9.0}}, {"judge": 2, "ifd_parts": {"loss": 0.5}}])
    frame = frame_from_records(recs)
    # judge high is good, loss low is good (negative weight).
    kept = build_step("select", {"by": {"judge": 1.0, "ifd_parts.loss": -1.0}, "top": 1})(frame).kept
    assert ids(kept) == ["r0"]
    only_loss = build_step("select", {"by": "ifd_parts.loss", "top": 1})(frame).kept
    assert ids(only_loss) == ["r2"]


def test_params_need_exactly_one_budget():
    with pytest.raises(ValidationError):
        build_step("select", {"by": "ifd"})
    with pytest.raises(ValidationError):
        build_step("select", {"by": "ifd", "top": 2, "fraction": 0.5})


def test_deita_skips_records_too_close_to_one_taken():
    vectors = np.array([[1, 0], [0.999, 0.0447], [0, 1], [0.7071, 0.7071]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chosen, close = diversity.deita_select(vectors, np.array([0, 1, 2, 3]), 3, 0.95)
    assert chosen == [0, 2, 3] and close == {1: (0, pytest.approx(0.999, abs=1e-3))}
    # Too few distinct records for the budget: the best skipped one fills it.
    chosen, close = diversity.deita_select(vectors[:2], np.array([0, 1]), 2, 0.95)
    assert chosen == [0, 1] and close == {}


def test_kcenter_takes_the_farthest_record_each_time():
    vectors = np.array([[1, 0], [0.98, 0.2], [-1, 0], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert diversity.kcenter_greedy(vectors, 0, 3) == [0, 2, 3]


def test_diverse_select_with_the_real_embedder_names_the_close_record():
    pytest.importorskip("torch")
    pairs = [PAIRS[0], ("What's the capital city of France?", "Paris is the capital of France."),
             PAIRS[4], PAIRS[5]]
    frame = frame_from_records(records(pairs, meta=[{"judge": s} for s in (5, 4, 3, 2)]))
    result = build_step("select", {"by": "judge", "top": 3, "diversity": "deita",
                                   "similarity": 0.8, "progress": False})(frame)
    assert ids(result.kept) == ["r0", "r2", "r3"]
    assert details(result.rejected)[0]["too_close_to"]["id"] == "r0"
    kcenter = build_step("select", {"by": "judge", "top": 2, "diversity": "kcenter", "progress": False})(frame)
    assert "r0" in ids(kcenter.kept) and "r1" not in ids(kcenter.kept)


def test_empty_frame():
    result = build_step("select", {"by": "ifd", "top": 3})(scored([]).head(0))
    assert result.kept.height == 0 and result.rejected.height == 0

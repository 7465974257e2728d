"""``select``: keep the best records under a budget, by a score in ``meta``.

``by`` names a meta key (``ifd``, ``judge``, ``reward``, a dotted path such as
``ifd_parts.loss``...) or a weighted combination ``{key: weight}``. Scores on different
scales are put on one by ``normalise`` (``rank``: each key's percentile, the default;
``zscore``; ``none``) before weighting; a negative weight makes low values count as
good for that key. ``lowest: true`` when low combined scores are best (perplexity).
Records with no score rank last. The budget is ``top`` records or a ``fraction`` of
them, over the whole set or within each source (``per_source``).

``diversity`` makes the choice spread over the embedding space (``sftdata.steps
.embeddings``): ``deita`` walks records from best to worst and skips one that is at
least ``similarity`` close to a record already taken (deita's score-first,
diversity-aware selection); ``kcenter`` is k-center greedy from the best record (pure
coverage, the score only picks the start).

Every record not taken is a reject ``not_selected`` whose detail holds its combined
score, rank and each score it had (and, for deita, the taken record it was too close to).
"""

from __future__ import annotations

import json
import math
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from sftdata.steps import diversity
from sftdata.steps.base import Step, split_by_reason
from sftdata.steps.registry import register
from sftdata.steps.scores import meta_numbers
from sftdata.steps.semantic_dedup import EmbeddingParams, embed_frame


class SelectParams(EmbeddingParams):
    """What to rank by, how many to keep, and whether to spread the choice."""

    by: str | dict[str, float] = Field(description="A meta key (dotted paths allowed), or {key: weight, ...} for a weighted combination.")
    top: int | None = Field(None, ge=0, description="Keep this many records (per source with per_source).")
    fraction: float | None = Field(None, gt=0, le=1, description="Keep this share of the records (rounded; per source with per_source).")
    lowest: bool = Field(False, description="Low scores are best (e.g. perplexity); default: high scores are best.")
    per_source: bool = Field(False, description="Apply the budget within each source, so every source keeps its share.")
    normalise: Literal["rank", "zscore", "none"] = Field("rank", description="How the keys of a combination are put on one scale before weighting.")
    diversity: Literal["none", "deita", "kcenter"] = Field("none", description="none: best scores; deita: best scores, skipping records too close to one taken; kcenter: k-center greedy on the embeddings.")
    similarity: float = Field(0.9, gt=0, le=1, description="deita: cosine similarity at or above which a record counts as too close to a taken one.")

    @model_validator(mode="after")
    def _one_budget(self):
        if (self.top is None) == (self.fraction is None):
            raise ValueError("give exactly one of top or fraction")
        if isinstance(self.by, dict) and not self.by:
            raise ValueError("by: give at least one key")
        return self


def _normalised(values: np.ndarray, how: str) -> np.ndarray:
    """One key's scores on a common scale (NaN stays NaN)."""
    ok = ~np.isnan(values)
    out = np.full(len(values), np.nan)
    if not ok.any() or how == "none":
        return values.copy() if how == "none" else out
    v = values[ok]
    if how == "rank":
        order = v.argsort(kind="stable")
        ranks = np.empty(len(v))
        ranks[order] = np.arange(len(v))
        # Ties share their mean rank, so equal scores get equal shares.
        _, inverse = np.unique(v, return_inverse=True)
        ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
        out[ok] = ranks / max(len(v) - 1, 1)
    else:
        out[ok] = (v - v.mean()) / (v.std() or 1.0)
    return out


def combined_score(frame: pl.DataFrame, p: SelectParams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the score ranked by, each key's raw values); a record missing any key is NaN."""
    weights = p.by if isinstance(p.by, dict) else {p.by: 1.0}
    raw = {key: meta_numbers(frame, key) for key in weights}
    if len(weights) == 1 and not isinstance(p.by, dict):
        return raw[p.by], raw
    total = np.zeros(frame.height)
    for key, weight in weights.items():
        total = total + weight * _normalised(raw[key], p.normalise)
    return total, raw


def budget_of(n: int, p: SelectParams) -> int:
    return min(n, p.top) if p.top is not None else min(n, round(p.fraction * n))


def _best_first(score: np.ndarray, lowest: bool) -> np.ndarray:
    """Indices from best to worst; missing scores last, ties in input order."""
    key = np.where(np.isnan(score), np.inf, score if lowest else -score)
    return np.lexsort((np.arange(len(score)), key))


@register
class Select(Step):
    """Keep the best records under a budget (top or fraction) by a meta score or a
    weighted combination, optionally per source and diversity-aware; the rest are
    rejects not_selected with their scores."""

    row_local = False  # sees the whole file at once (Step.row_local)

    name = "select"
    reason_codes = ("not_selected",)
    Params = SelectParams

    def run(self, frame: pl.DataFrame):
        p = self.params
        score, raw = combined_score(frame, p)
        vectors = embed_frame(frame, p, "select") if p.diversity != "none" and frame.height else None
        sources = frame["source"].to_numpy() if p.per_source else np.zeros(frame.height)
        chosen = np.zeros(frame.height, dtype=bool)
        rank = np.full(frame.height, -1)
        close: dict[int, tuple[int, float]] = {}
        for source in np.unique(sources) if frame.height else []:
            members = np.flatnonzero(sources == source)
            order = members[_best_first(score[members], p.lowest)]
            rank[order] = np.arange(len(order))
            budget = budget_of(len(members), p)
            if budget == 0:
                continue
            if p.diversity == "none":
                picks = order[:budget]
            elif p.diversity == "deita":
                local, skipped = diversity.deita_select(vectors[members], _best_first(score[members], p.lowest),
                                                        budget, p.similarity)
                picks = members[local]
                close.update({int(members[i]): (int(members[j]), s) for i, (j, s) in skipped.items()})
            else:
                picks = members[diversity.kcenter_greedy(vectors[members], int(np.flatnonzero(members == order[0])[0]), budget)]
            chosen[picks] = True
        ids = frame["id"].to_list()
        reasons, details = [], []
        for i in range(frame.height):
            if chosen[i]:
                reasons.append(None)
                details.append(None)
                continue
            detail = {"by": p.by, "score": None if math.isnan(score[i]) else round(float(score[i]), 6),
                      "rank": int(rank[i]) + 1,
                      "scores": {k: (None if math.isnan(v[i]) else float(v[i])) for k, v in raw.items()}}
            if i in close:
                j, s = close[i]
                detail["too_close_to"] = {"id": ids[j], "similarity": round(s, 4)}
            reasons.append("not_selected")
            details.append(json.dumps(detail, ensure_ascii=False))
        return split_by_reason(frame, pl.Series(reasons, dtype=pl.String),
                               pl.Series(details, dtype=pl.String))

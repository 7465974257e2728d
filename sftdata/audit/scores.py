"""The audit's view of model scores: every numeric score in ``meta``, per source.

For each score key found (``perplexity``, ``ifd``, ``judge``, ``reward``,
``semantic_dedup``, or any other numeric meta key a step or input wrote), the section
gives its summary and a histogram overall and per source (same bins, so sources
compare), the top and bottom records, and, for the first pairs of scores, the points of
a scatter plot with their correlation, so one can see how two scores relate.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from sftdata.steps.scores import meta_numbers, score_keys

# Keys the score steps write, first in this order; other numeric meta keys follow.
KNOWN = ("ifd", "perplexity", "judge", "reward", "semantic_dedup")
BINS = 20
EXAMPLES = 3
SCATTER_POINTS = 2000
MAX_PAIRS = 3
EXCERPT = 220


def _summary(values: np.ndarray) -> dict:
    q = np.percentile(values, [0, 10, 50, 90, 100])
    return {"count": int(values.size), "mean": float(round(values.mean(), 4)),
            **{k: float(round(v, 4)) for k, v in zip(("min", "p10", "p50", "p90", "max"), q)}}


def _histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [int(c) for c in counts]


def _examples(frame: pl.DataFrame, order: np.ndarray, values: np.ndarray) -> list[dict]:
    out = []
    for i in order[:EXAMPLES]:
        messages = frame["messages"][int(i)].to_list()
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        answer = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
        out.append({"id": frame["id"][int(i)], "source": frame["source"][int(i)],
                    "score": float(round(values[i], 4)),
                    "instruction": user[:EXCERPT], "response": answer[:EXCERPT]})
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(round(np.corrcoef(a, b)[0, 1], 4))


def score_stats(frame: pl.DataFrame) -> dict:
    """The scores section of the audit (``{"available": False, ...}`` when there are none)."""
    keys = [k for k in KNOWN if k in score_keys(frame)] + [k for k in score_keys(frame) if k not in KNOWN]
    if not keys:
        return {"available": False,
                "reason": "no numeric scores in meta (run perplexity, ifd, judge, reward or semantic_dedup)"}
    sources = frame["source"].to_numpy()
    columns, out = {}, []
    for key in keys:
        values = meta_numbers(frame, key)
        ok = ~np.isnan(values)
        if not ok.any():
            continue
        columns[key] = values
        present = values[ok]
        low, high = float(present.min()), float(np.percentile(present, 99))
        edges = np.linspace(low, high if high > low else low + 1, BINS + 1)
        by_source = []
        for source in sorted(set(sources[ok].tolist())):
            mine = values[ok & (sources == source)]
            by_source.append({"source": source, **_summary(mine), "counts": _histogram(mine, edges)})
        order = np.flatnonzero(ok)[np.argsort(-present, kind="stable")]
        out.append({"key": key, **_summary(present), "missing": int((~ok).sum()),
                    "edges": [float(round(e, 4)) for e in edges], "counts": _histogram(present, edges),
                    "by_source": by_source, "top": _examples(frame, order, values),
                    "bottom": _examples(frame, order[::-1], values)})
    pairs = []
    for a, b in list(itertools.combinations(columns, 2))[:MAX_PAIRS]:
        both = np.flatnonzero(~np.isnan(columns[a]) & ~np.isnan(columns[b]))
        if len(both) < 2:
            continue
        shown = both[np.linspace(0, len(both) - 1, min(len(both), SCATTER_POINTS)).astype(int)]
        pairs.append({"x": a, "y": b, "records": int(len(both)),
                      "pearson": _pearson(columns[a][both], columns[b][both]),
                      "points": [[float(round(columns[a][i], 4)), float(round(columns[b][i], 4)),
                                  str(sources[i])] for i in shown]})
    return {"available": True, "scores": out, "pairs": pairs}

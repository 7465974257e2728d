"""Per-record columns the statistics are made of, as polars expressions, and summaries.

Definitions (the report repeats them):
- instruction: every user turn of a record joined by newlines; response: every assistant
  turn (``sftdata.steps.base.prompt_text`` / ``response_text``);
- turns: the messages of a record that are not system messages;
- words: ``sftdata.text``'s words, the same the length filter counts (each character
  of a script written without spaces is a word; emoji count; punctuation does not).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from sftdata import text as tx
from sftdata.steps.base import prompt_text, response_text

HIST_BINS = 30


def _role() -> pl.Expr:
    return pl.element().struct.field("role")


def role_count(role: str) -> pl.Expr:
    """How many turns of ``role`` each record has."""
    return pl.col("messages").list.eval((_role() == role).cast(pl.Int32)).list.sum()


def first_of_role(role: str) -> pl.Expr:
    """The content of the first ``role`` turn, or null."""
    return (pl.col("messages")
            .list.eval(pl.element().filter(_role() == role).struct.field("content"))
            .list.first())


def derive(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per record with the columns every section reads."""
    tool_calls = (pl.col("messages")
                  .list.eval(pl.element().struct.field("tool_calls").list.len().fill_null(0))
                  .list.sum())
    extra = pl.element().struct.field("extra")
    reasoning = (pl.col("messages").list.eval(
        extra.str.json_path_match("$.reasoning_content").str.len_chars().fill_null(0)).list.sum())
    return frame.select(
        pl.col("id"),
        pl.col("source"),
        pl.col("messages").list.len().alias("n_messages"),
        role_count("system").alias("n_system"),
        role_count("user").alias("n_user"),
        role_count("tool").alias("n_tool"),
        tool_calls.alias("n_tool_calls"),
        reasoning.alias("reasoning_chars"),
        pl.col("messages").list.eval(extra.is_not_null()).list.any().alias("has_message_extra"),
        (pl.col("tools").is_not_null() & (pl.col("tools").str.strip_chars() != "[]"))
        .alias("has_tool_specs"),
        prompt_text().alias("instruction"),
        response_text().alias("response"),
        first_of_role("user").fill_null("").alias("first_user"),
        first_of_role("system").alias("system"),
    ).with_columns((pl.col("n_messages") - pl.col("n_system")).alias("turns"))


def word_count(column: str) -> pl.Expr:
    """Words in a text column (see the module docstring)."""
    return tx.word_count(pl.col(column)).cast(pl.Int64)


def char_count(column: str) -> pl.Expr:
    return pl.col(column).str.len_chars().cast(pl.Int64)


def _round(value: float) -> float:
    return float(round(value, 2)) if value is not None and math.isfinite(value) else 0.0


def histogram(values: np.ndarray, integer: bool = False, bins: int = HIST_BINS) -> dict:
    """Counts over ``bins`` equal bins from the minimum to the 99th percentile; values
    above it are counted in ``overflow`` so one huge record does not flatten the plot."""
    if values.size == 0:
        return {"edges": [], "counts": [], "overflow": 0}
    low, high = float(values.min()), float(np.percentile(values, 99))
    if integer:
        width = max(1, math.ceil((math.ceil(high) - low + 1) / bins))
        steps = math.ceil((math.ceil(high) - low + 1) / width)
        edges = low + width * np.arange(steps + 1, dtype=float)
    else:
        edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    overflow = int((values > edges[-1]).sum())
    return {"edges": [_round(e) for e in edges], "counts": [int(c) for c in counts],
            "overflow": overflow}


def distribution(series: pl.Series, integer: bool = True) -> dict:
    """Summary figures and a histogram of one numeric column."""
    values = series.drop_nulls().to_numpy()
    if values.size == 0:
        return {"count": 0, "mean": 0.0, "min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0,
                "hist": histogram(values)}
    q50, q90, q99 = np.percentile(values, [50, 90, 99])
    return {
        "count": int(values.size),
        "mean": _round(values.mean()),
        "min": int(values.min()),
        "p50": _round(q50),
        "p90": _round(q90),
        "p99": _round(q99),
        "max": int(values.max()),
        "hist": histogram(values, integer=integer),
    }


def share(part: int, whole: int) -> float:
    """``part / whole`` rounded to 4 places (0.0 for an empty whole)."""
    return round(part / whole, 4) if whole else 0.0

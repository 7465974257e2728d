"""What a step is: a name, a pydantic ``Params`` model and ``__call__(frame) -> StepResult``.

A step takes the canonical DataFrame (``sftdata.records.FRAME_SCHEMA``) and returns the
rows it keeps, the rows it drops (each with a ``reason`` code and an optional JSON
``detail``, e.g. the id a duplicate duplicates) and a ``StepReport`` with the counts.
Rejected rows are never lost: callers write them to the rejects file.

A filter subclass writes one method, ``reasons(frame)``, returning a String Series with
the reason code for each row to drop and null for each row to keep; the base class does
the splitting and counting (the datatrove ``BaseFilter`` style).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict

REASON = "reason"
DETAIL = "detail"


class NoParams(BaseModel):
    """A step without parameters."""

    model_config = ConfigDict(extra="forbid")


class StepReport(BaseModel):
    """Counts for one step: what came in, what stayed, and drops by reason code."""

    step: str
    rows_in: int
    rows_out: int
    drops: dict[str, int]
    seconds: float
    params: dict = {}


@dataclass
class StepResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame  # canonical columns + reason (str) + detail (JSON str or null)
    report: StepReport


class Step:
    """Base class of every registered step."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    # Params that name files (a str or a list of str). A recipe's relative paths are
    # resolved against the recipe's folder, and the files' contents key the stage cache.
    path_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: BaseModel | dict | None = None, **kwargs):
        if isinstance(params, BaseModel):
            self.params = params
        else:
            self.params = self.Params.model_validate({**(params or {}), **kwargs})

    def run(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Return (kept, rejected); ``rejected`` carries ``reason`` and ``detail`` columns."""
        raise NotImplementedError

    def __call__(self, frame: pl.DataFrame) -> StepResult:
        start = time.perf_counter()
        kept, rejected = self.run(frame)
        drops = {}
        if rejected.height:
            counts = rejected.group_by(REASON).len().sort(REASON)
            drops = dict(zip(counts[REASON].to_list(), counts["len"].to_list()))
        report = StepReport(
            step=self.name,
            rows_in=frame.height,
            rows_out=kept.height,
            drops=drops,
            seconds=round(time.perf_counter() - start, 4),
            params=self.params.model_dump(mode="json"),
        )
        return StepResult(kept=kept, rejected=rejected, report=report)


def split_by_reason(
    frame: pl.DataFrame, reasons: pl.Series, details: pl.Series | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` on a String Series of reasons (null = keep) into kept and rejected."""
    tagged = frame.with_columns(
        reasons.cast(pl.String).alias(REASON),
        (details if details is not None else pl.lit(None, dtype=pl.String)).alias(DETAIL),
    )
    keep = tagged[REASON].is_null()
    kept = tagged.filter(keep).drop(REASON, DETAIL)
    rejected = tagged.filter(~keep)
    return kept, rejected


class Filter(Step):
    """A step that drops rows by a per-row reason; subclasses write ``reasons``."""

    def reasons(self, frame: pl.DataFrame) -> pl.Series:
        """A String Series: the reason code for each row to drop, null for each to keep."""
        raise NotImplementedError

    def run(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        if frame.height == 0:
            return split_by_reason(frame, pl.Series(REASON, [], dtype=pl.String))
        return split_by_reason(frame, self.reasons(frame))


def role_text(role: str) -> pl.Expr:
    """Expression: the contents of every ``role`` turn of a record, joined by newlines."""
    return (
        pl.col("messages")
        .list.eval(pl.element().filter(pl.element().struct.field("role") == role)
                   .struct.field("content"))
        .list.join("\n")
        .fill_null("")
    )


def prompt_text() -> pl.Expr:
    """The instruction side of a record: all user turns."""
    return role_text("user")


def response_text() -> pl.Expr:
    """The response side of a record: all assistant turns."""
    return role_text("assistant")

"""What a step is: a name, a pydantic ``Params`` model and ``__call__(frame) -> StepResult``.

A step takes the canonical DataFrame (``sftdata.records.FRAME_SCHEMA``) and returns the
rows it keeps, the rows it drops (each with a ``reason`` code and an optional JSON
``detail``, e.g. the id a duplicate duplicates) and a ``StepReport`` with the counts.
Rejected rows are never lost: callers write them to the rejects file.

A filter subclass writes one method, ``reasons(frame, texts)``, returning a String Series
with the reason code for each row to drop and null for each row to keep; the base class
does the splitting and counting (the datatrove ``BaseFilter`` style). ``texts`` is a
``Texts``: the prompt and response of every row, computed once by whoever runs the
steps (``run_chain``) and handed to each filter, so no filter recomputes them.

Contract notes for step authors (changed in this version):

- ``Filter.reasons`` takes ``(frame, texts)``; it used to take ``frame`` alone and read
  the texts from hidden ``__prompt``/``__response`` columns, which no longer exist.
- ``StepResult.keep`` is the boolean mask of the rows kept (null when a step does not
  say), so a runner can narrow its ``Texts`` instead of recomputing them.
- A step that must see every row before it decides (dedup) subclasses ``GlobalStep``:
  ``observe`` each batch, ``decide`` once, then ``split`` each batch again. Its
  ``run(frame)`` does the three on one frame, so it works on a whole frame like any
  other step; the streaming commands call the three parts themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict

REASON = "reason"
DETAIL = "detail"
PROMPT = "prompt"
RESPONSE = "response"


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

    def merged(self, other: StepReport) -> StepReport:
        """This report and ``other`` (the same step on another batch) added up."""
        drops = dict(self.drops)
        for reason, count in other.drops.items():
            drops[reason] = drops.get(reason, 0) + count
        return self.model_copy(update={
            "rows_in": self.rows_in + other.rows_in, "rows_out": self.rows_out + other.rows_out,
            "drops": dict(sorted(drops.items())), "seconds": round(self.seconds + other.seconds, 4)})


@dataclass
class StepResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame  # canonical columns + reason (str) + detail (JSON str or null)
    report: StepReport
    keep: pl.Series | None = None  # True for each input row that was kept


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


@dataclass(frozen=True)
class Texts:
    """The prompt (all user turns) and response (all assistant turns) of every row.

    ``frame`` has the columns ``prompt`` and ``response`` (``PROMPT``, ``RESPONSE``) and,
    when the texts were made from records, their ``messages``: filters evaluate their
    expressions on it. Made once per frame by ``Texts.of`` and narrowed with ``filter``
    as steps drop rows.
    """

    frame: pl.DataFrame

    @classmethod
    def of(cls, frame: pl.DataFrame, chunk: int = 100_000) -> Texts:
        """The texts of a canonical frame, computed slice by slice (the list expressions
        need several times the text's size in scratch memory)."""
        exprs = [prompt_text().alias(PROMPT), response_text().alias(RESPONSE), pl.col("messages")]
        parts = [frame.slice(start, chunk).select(exprs) for start in range(0, frame.height, chunk)]
        return cls(pl.concat(parts) if parts else frame.select(exprs))

    @classmethod
    def of_texts(cls, prompt: pl.Series, response: pl.Series,
                 messages: pl.Series | None = None) -> Texts:
        """Texts given directly (e.g. the audit's own instruction/response columns)."""
        columns = {PROMPT: prompt.fill_null(""), RESPONSE: response.fill_null("")}
        if messages is not None:
            columns["messages"] = messages
        return cls(pl.DataFrame(columns))

    @property
    def height(self) -> int:
        return self.frame.height

    def side(self, side: str) -> pl.Series:
        """The ``prompt`` or ``response`` Series."""
        return self.frame[side]

    def filter(self, keep: pl.Series) -> Texts:
        return Texts(self.frame.filter(keep))


class Step:
    """Base class of every registered step."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    # Params that name files (a str or a list of str). A recipe's relative paths are
    # resolved against the recipe's folder, and the files' contents key the stage cache.
    path_params: ClassVar[tuple[str, ...]] = ()
    reason_codes: ClassVar[tuple[str, ...]] = ()
    # False for a step whose decision on a row depends on the other rows and that is not a
    # GlobalStep (a budgeted select, embedding near-duplicates), or that should load its
    # model once for the whole file (scores): a file run gives it every row in one frame.
    row_local: ClassVar[bool] = True

    def __init__(self, params: BaseModel | dict | None = None, **kwargs):
        if isinstance(params, BaseModel):
            self.params = params
        else:
            self.params = self.Params.model_validate({**(params or {}), **kwargs})

    def run(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Return (kept, rejected); ``rejected`` carries ``reason`` and ``detail`` columns."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Build what every batch needs (an index of eval n-grams) now, so an engine that
        ships the step to many workers builds it once, not once per worker."""

    def _split(self, frame: pl.DataFrame, texts: Texts | None):
        """(kept, rejected, keep mask or None) for ``frame``."""
        kept, rejected = self.run(frame)
        return kept, rejected, None

    def __call__(self, frame: pl.DataFrame, texts: Texts | None = None) -> StepResult:
        start = time.perf_counter()
        kept, rejected, keep = self._split(frame, texts)
        return StepResult(kept=kept, rejected=rejected, keep=keep,
                          report=self.report(frame.height, kept.height, rejected, start))

    def report(self, rows_in: int, rows_out: int, rejected: pl.DataFrame, start: float) -> StepReport:
        drops = {}
        if rejected.height:
            counts = rejected.group_by(REASON).len().sort(REASON)
            drops = dict(zip(counts[REASON].to_list(), counts["len"].to_list()))
        return StepReport(step=self.name, rows_in=rows_in, rows_out=rows_out, drops=drops,
                          seconds=round(time.perf_counter() - start, 4),
                          params=self.params.model_dump(mode="json"))


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

    def reasons(self, frame: pl.DataFrame, texts: Texts) -> pl.Series:
        """A String Series: the reason code for each row to drop, null for each to keep."""
        raise NotImplementedError

    def _split(self, frame: pl.DataFrame, texts: Texts | None):
        if frame.height == 0:
            kept, rejected = split_by_reason(frame, pl.Series(REASON, [], dtype=pl.String))
            return kept, rejected, pl.Series([], dtype=pl.Boolean)
        reasons = self.reasons(frame, texts if texts is not None else Texts.of(frame))
        kept, rejected = split_by_reason(frame, reasons)
        return kept, rejected, reasons.is_null()

    def run(self, frame: pl.DataFrame, texts: Texts | None = None):
        kept, rejected, _ = self._split(frame, texts)
        return kept, rejected


class GlobalStep(Step):
    """A step that decides only after seeing every row (dedup): ``observe`` each batch in
    order, ``decide`` once, then ``split`` the same batches in the same order.

    ``alive`` (for ``decide``) is a boolean array over every observed row, False for rows
    an earlier step already dropped: they take no part in this step's decisions.
    """

    def observe(self, batch: pl.DataFrame, shared: dict | None = None) -> None:
        """Look at a batch. ``shared`` is one dict the runner gives every global step for
        the same batch, so they can compute a derived column (a normalised text) once."""
        raise NotImplementedError

    def decide(self, alive=None) -> None:
        raise NotImplementedError

    def split(self, batch: pl.DataFrame, offset: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
        """(kept, rejected, keep mask) of the batch whose first row is observed row ``offset``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what was observed (a new pass over new data)."""

    def wants_ids(self):
        """The observed rows (indices) whose ids ``split`` will name; ``give_ids`` gets them."""
        return []

    def give_ids(self, ids: list[str]) -> None:
        """The ids of ``wants_ids()``'s rows, in the same order."""

    def dropped(self):
        """After ``decide``: True for each observed row this step drops (a numpy array)."""
        raise NotImplementedError

    def _split(self, frame: pl.DataFrame, texts: Texts | None):
        self.reset()
        self.observe(frame, {})
        self.decide()
        self.give_ids(frame["id"].gather(self.wants_ids()).to_list())
        return self.split(frame, 0)

    def run(self, frame: pl.DataFrame):
        kept, rejected, _ = self._split(frame, None)
        return kept, rejected


@dataclass
class ChainResult:
    """What ``run_chain`` did: the kept rows, each step's rejected rows, and reports."""

    kept: pl.DataFrame
    rejected: list[tuple[str, pl.DataFrame]]
    reports: list[StepReport]
    texts: Texts | None = None


def run_chain(frame: pl.DataFrame, steps: list[Step], texts: Texts | None = None) -> ChainResult:
    """Run ``steps`` in order on ``frame``: the one loop every runner uses.

    The texts the filters read are computed once (here, unless given) and narrowed with
    each step's keep mask; a step that does not give its mask makes them recomputed.
    """
    if texts is None and any(isinstance(s, Filter) for s in steps):
        texts = Texts.of(frame)
    rejected, reports = [], []
    for i, step in enumerate(steps):
        result = step(frame, texts)
        frame = result.kept
        rejected.append((step.name, result.rejected))
        reports.append(result.report)
        if texts is not None:
            texts = texts.filter(result.keep) if result.keep is not None else None
        if texts is None and any(isinstance(s, Filter) for s in steps[i + 1:]):
            texts = Texts.of(frame)
    return ChainResult(frame, rejected, reports, texts)

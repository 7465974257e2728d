"""Mixing several sources of canonical records into one training set.

Fine-tuning on narrow domain data makes a model forget general skills; the usual
defence is to mix general instruction data back in. ``mix_sources`` does that mixing as
a pure function over canonical frames:

* The share of each source is set by exactly one of: ``ratios`` (fractions by source
  name; sources left out share what remains, by weight), the sources' ``weight``
  (relative, normalised), ``temperature`` (p ~ size ** (1 / T), the mT5 / XLM-R rule:
  T = 1 keeps natural sizes, larger T flattens towards uniform), or nothing (every
  record of every source, in natural proportions).
* Counts are apportioned by largest remainder, so each source is within one record of
  ``total * share``. Without ``total`` the mix is the largest one that needs no
  upsampling (every record once when the proportions are natural).
* A source is sampled without replacement while it has enough records. It is upsampled
  (whole copies plus a sample without replacement of the rest) only when ``total``
  asks for more than it has, and only unless ``replacement="never"``, which makes that a
  one-line error. ``replacement="always"`` draws independently with replacement.
* ``caps`` bound how many records a source gives. With natural or temperature shares
  a cap also bounds the size the share is computed from (T5's "artificial limit");
  with an explicit ``total`` the records a capped source cannot give go to the others.
* Each output record's ``source`` becomes its mix source's name, so the audit can show
  the mix. Draws are deterministic per seed (each source has its own random stream, so
  adding a source does not change what the others give) and the output is shuffled.

``sftdata.steps.mix_recipe`` holds the recipe side: ``MixParams`` / ``MixSourceSpec``
describe a mix in YAML, and ``run_mix`` reads the files they name and runs ``mix_sources``.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel

from sftdata.errors import UserError
from sftdata.records import FRAME_SCHEMA
from sftdata.steps.base import StepReport

Replacement = Literal["auto", "never", "always"]
Mode = Literal["natural", "ratio", "weight", "temperature"]
# A total above this many times the records of all sources is refused: that much
# upsampling is a typo (an extra zero), and the output would be built in memory first.
MAX_UPSAMPLING = 1000


@dataclass
class MixSource:
    """One input of a mix: a name (becomes each record's ``source``) and its records."""

    name: str
    frame: pl.DataFrame
    weight: float | None = None


class MixSourceReport(BaseModel):
    """What one source gave: ``upsampled`` = records taken beyond its distinct ones."""

    name: str
    available: int
    taken: int
    unique: int
    upsampled: int
    capped: bool
    target_fraction: float
    fraction: float


class MixReport(BaseModel):
    """The whole mix: one row per source, and notes worth telling the user."""

    total: int
    seed: int
    mode: Mode
    replacement: Replacement
    temperature: float | None = None
    sources: list[MixSourceReport]
    notes: list[str] = []
    seconds: float = 0.0

    def step_report(self) -> StepReport:
        """The mix as a ``StepReport`` for the audit (records never drawn = not_sampled)."""
        available = sum(s.available for s in self.sources)
        unused = sum(s.available - s.unique for s in self.sources)
        return StepReport(
            step="mix", rows_in=available, rows_out=self.total,
            drops={"not_sampled": unused} if unused else {}, seconds=self.seconds,
            params=self.model_dump(mode="json", exclude={"seconds"}),
        )


def apportion(total: int, shares: list[float]) -> list[int]:
    """Split ``total`` by ``shares`` (largest remainder): each count within 1 of its share.

    >>> apportion(10, [0.5, 0.25, 0.25])
    [5, 3, 2]
    >>> apportion(7, [1, 1, 0])
    [4, 3, 0]
    """
    whole = sum(shares)
    if total <= 0 or whole <= 0:
        return [0] * len(shares)
    raw = [total * s / whole for s in shares]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _allocate(total: int, shares: list[float], limits: list[float]) -> list[int]:
    """Apportion ``total``; a source over its limit is fixed at it and the rest re-split."""
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(len(shares)) if i not in fixed and shares[i] > 0]
        counts = apportion(total - sum(fixed.values()), [shares[i] for i in free])
        over = [i for i, c in zip(free, counts) if c > limits[i]]
        if not over:
            out = [0] * len(shares)
            for i, c in fixed.items():
                out[i] = c
            for i, c in zip(free, counts):
                out[i] = c
            return out
        for i in over:
            fixed[i] = int(limits[i])


def _largest_fitting_total(shares: list[float], limits: list[float]) -> int:
    """The largest total whose apportionment fits within every source's limit."""
    whole = sum(shares)
    bounds = [lim * whole / s for s, lim in zip(shares, limits) if s > 0]
    if not bounds:
        return 0
    # The tolerance keeps an exact bound (30 / 0.25 = 120) from rounding down to 119.
    total = int(min(bounds) + 1e-9) if all(math.isfinite(b) for b in bounds) else 0
    while total > 0 and any(c > lim for c, lim in zip(apportion(total, shares), limits)):
        total -= 1
    return total


def _shares(sources, ratios, temperature, sizes) -> tuple[Mode, list[float]]:
    names = [s.name for s in sources]
    weighted = any(s.weight is not None for s in sources)
    if bool(ratios) + (temperature is not None) + (weighted and not ratios) > 1:
        raise UserError("set the proportions one way only: ratios (weights then split the "
                        "remainder), source weights, or a temperature")
    for s in sources:
        if s.weight is not None and not (s.weight >= 0 and math.isfinite(s.weight)):
            raise UserError(f"source {s.name!r}: weight must be a number >= 0, got {s.weight}")
    if ratios:
        for name, r in ratios.items():
            if not 0 <= r <= 1:
                raise UserError(f"ratio for {name!r} must be between 0 and 1, got {r}")
        given = sum(ratios.values())
        rest = [n for n in names if n not in ratios]
        if not rest:
            if abs(given - 1) > 1e-6:
                raise UserError(f"ratios sum to {given:g}; with every source named they must sum to 1")
            return "ratio", [ratios[n] for n in names]
        if given >= 1 - 1e-9:
            raise UserError(f"ratios sum to {given:g} and leave nothing for {', '.join(rest)}")
        # Sources without a ratio share the remainder by weight (equally by default).
        weights = {s.name: 1.0 if s.weight is None else s.weight for s in sources if s.name in rest}
        if sum(weights.values()) <= 0:
            raise UserError(f"the sources without a ratio ({', '.join(rest)}) all have weight 0")
        spare = (1 - given) / sum(weights.values())
        return "ratio", [ratios[n] if n in ratios else spare * weights[n] for n in names]
    if temperature is not None:
        if not (temperature > 0 and math.isfinite(temperature)):
            raise UserError(f"temperature must be > 0, got {temperature}")
        return "temperature", [size ** (1 / temperature) if size else 0.0 for size in sizes]
    if weighted:
        weights = [1.0 if s.weight is None else s.weight for s in sources]
        if sum(weights) <= 0:
            raise UserError("source weights sum to 0")
        return "weight", [w / sum(weights) for w in weights]
    return "natural", [float(size) for size in sizes]


def _draw(rng: np.random.Generator, available: int, count: int, replacement: Replacement) -> np.ndarray:
    """Row indices: without replacement when possible, whole copies plus a sample if not."""
    if replacement == "always":
        return rng.integers(0, available, count)
    copies, rest = divmod(count, available)
    parts = [rng.permutation(available) for _ in range(copies)]
    parts.append(rng.permutation(available)[:rest])
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _source_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed % 2**63, zlib.crc32(name.encode("utf-8"))])


@dataclass
class MixPlan:
    """What a mix takes, worked out from the sources' sizes alone: the row indices drawn
    from each source (None: none), and the output order over their concatenation."""

    draws: list[np.ndarray | None]
    order: np.ndarray
    report: MixReport

    def undrawn(self, index: int, size: int) -> np.ndarray:
        """Rows of source ``index`` (of ``size`` rows) that the mix never draws."""
        idx = self.draws[index]
        if idx is None:
            return np.arange(size)
        return np.setdiff1d(np.arange(size), np.unique(idx), assume_unique=True)


def plan_mix(
    sources: list[MixSource],
    sizes: list[int],
    total: int | None = None,
    ratios: dict[str, float] | None = None,
    temperature: float | None = None,
    caps: dict[str, int] | None = None,
    seed: int = 0,
    replacement: Replacement = "auto",
) -> MixPlan:
    """The draws and the shuffle of a mix of sources of ``sizes`` records (see the module
    docstring); no record is touched, so the sources can be files read later."""
    start = time.perf_counter()
    if not sources:
        raise UserError("nothing to mix: give at least one source")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"two sources are named {dup[0]!r}; give each source a distinct name "
                        "(NAME=PATH on the command line)")
    for label, given in (("ratio", ratios or {}), ("cap", caps or {})):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise UserError(f"{label} for unknown source {unknown[0]!r}; sources: {', '.join(names)}")
    caps = caps or {}
    if any(c < 0 for c in caps.values()):
        raise UserError("caps must be >= 0")
    if replacement not in ("auto", "never", "always"):
        raise UserError(f"replacement must be auto, never or always, got {replacement!r}")
    if total is not None and total < 0:
        raise UserError(f"total must be >= 0, got {total}")
    if total is not None and total > MAX_UPSAMPLING * max(sum(sizes), 1):
        raise UserError(f"a total of {total:,} is over {MAX_UPSAMPLING}x the {sum(sizes):,} records of all "
                        "sources together; ask for fewer")
    cap_of = [caps.get(n, math.inf) for n in names]
    capped_sizes = [min(size, cap) for size, cap in zip(sizes, cap_of)]
    mode, shares = _shares(sources, ratios, temperature, capped_sizes)
    notes: list[str] = []

    if total is None:
        if mode == "natural":
            counts = [int(c) for c in capped_sizes]
        elif replacement == "always":
            counts = _allocate(sum(int(c) for c in capped_sizes), shares, cap_of)
        else:
            fit = _largest_fitting_total(shares, capped_sizes)
            counts = apportion(fit, shares)
            notes.append(f"no total given: took the largest mix that needs no upsampling ({fit:,} records)")
    else:
        counts = _allocate(total, shares, cap_of)
        if sum(counts) < total:
            notes.append(f"caps allow only {sum(counts):,} of the {total:,} records asked for")

    draws, reports = [], []
    out_total = sum(counts)
    for source, size, count, share, cap in zip(sources, sizes, counts, shares, cap_of):
        if count > size and (size == 0 or replacement == "never"):
            why = "it is empty" if size == 0 else "--no-replacement forbids upsampling"
            raise UserError(
                f"source {source.name!r} has {size:,} records but the mix needs {count:,} and {why}; "
                "lower the total, cap the source or change the ratios"
            )
        idx = _draw(_source_rng(seed, source.name), size, count, replacement) if count else None
        unique = len(np.unique(idx)) if idx is not None else 0
        draws.append(idx)
        if count > unique:
            notes.append(f"{source.name}: upsampled, {count:,} taken from {size:,} records "
                         f"({count - unique:,} repeats)")
        if count >= cap and total is not None and count < round(total * share / sum(shares)):
            notes.append(f"{source.name}: capped at {count:,}; the others filled its share")
        reports.append(MixSourceReport(
            name=source.name, available=size, taken=count, unique=unique,
            upsampled=count - unique, capped=count >= cap,
            target_fraction=round(share / sum(shares), 6) if sum(shares) else 0.0,
            fraction=round(count / out_total, 6) if out_total else 0.0,
        ))
    order = np.random.default_rng([seed % 2**63, 0x5EED]).permutation(out_total)
    report = MixReport(
        total=out_total, seed=seed, mode=mode, replacement=replacement,
        temperature=temperature, sources=reports, notes=notes,
        seconds=round(time.perf_counter() - start, 4),
    )
    return MixPlan(draws, order, report)


def mix_sources(
    sources: list[MixSource],
    total: int | None = None,
    ratios: dict[str, float] | None = None,
    temperature: float | None = None,
    caps: dict[str, int] | None = None,
    seed: int = 0,
    replacement: Replacement = "auto",
) -> tuple[pl.DataFrame, MixReport]:
    """Mix ``sources`` into one shuffled canonical frame (see the module docstring)."""
    outcome = mix_with_unsampled(sources, total, ratios, temperature, caps, seed, replacement)
    return outcome.frame, outcome.report


@dataclass
class MixOutcome:
    """A mix, its report, and per source the records it never drew (``not_sampled``)."""

    frame: pl.DataFrame
    report: MixReport
    unsampled: dict[str, pl.DataFrame]


def mix_with_unsampled(
    sources: list[MixSource],
    total: int | None = None,
    ratios: dict[str, float] | None = None,
    temperature: float | None = None,
    caps: dict[str, int] | None = None,
    seed: int = 0,
    replacement: Replacement = "auto",
) -> MixOutcome:
    """``mix_sources``, also returning the records each source had that were not drawn."""
    start = time.perf_counter()
    sizes = [s.frame.height for s in sources]
    plan = plan_mix(sources, sizes, total, ratios, temperature, caps, seed, replacement)
    rows = [source.frame.select(FRAME_SCHEMA.names())[idx]
            .with_columns(pl.lit(source.name, dtype=pl.String).alias("source"))
            for source, idx in zip(sources, plan.draws) if idx is not None]
    mixed = pl.concat(rows, how="vertical", rechunk=True) if rows else pl.DataFrame(schema=FRAME_SCHEMA)
    mixed = mixed[plan.order] if mixed.height else mixed
    unsampled = {}
    for i, (source, size) in enumerate(zip(sources, sizes)):
        left = plan.undrawn(i, size)
        if len(left):
            unsampled[source.name] = source.frame.select(FRAME_SCHEMA.names())[left]
    report = plan.report.model_copy(update={"seconds": round(time.perf_counter() - start, 4)})
    return MixOutcome(mixed, report, unsampled)

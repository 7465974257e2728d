"""A mix as a recipe or the CLI describes it: the source specs, and reading their files.

``MixParams`` / ``MixSourceSpec`` are the ``mix:`` block of a recipe (and what ``sftdata
mix`` builds from its options); ``run_mix`` reads the files they name and hands the
frames to ``sftdata.steps.mix.mix_sources``, which does the mixing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata.errors import UserError
from sftdata.records import records_from_frame
from sftdata.rejects import make_reject
from sftdata.steps.mix import MixReport, MixSource, Replacement, mix_with_unsampled


class MixSourceSpec(BaseModel):
    """One source of a recipe's mix."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(
        default=None,
        description="Data file (any supported format), relative to the recipe's folder. "
        "Leave out to mean the records the recipe's own steps produced.",
    )
    name: str | None = Field(
        default=None,
        description="Name written to each record's `source` (default: the file stem, or "
        "`main` for the recipe's own records).",
    )
    format: str | None = Field(default=None, description="Input format (default: detected).")
    weight: float | None = Field(default=None, ge=0, description="Relative share (normalised).")
    ratio: float | None = Field(
        default=None, ge=0, le=1, description="Exact fraction of the output (sources without "
        "one share what the others leave).",
    )
    cap: int | None = Field(default=None, ge=0, description="Most records to take from it.")

    def source_name(self) -> str:
        """The name records of this source carry."""
        return self.name or (Path(self.path).stem if self.path else "main")


class MixParams(BaseModel):
    """A mix as written in a recipe (``mix:`` section) or built from CLI options."""

    model_config = ConfigDict(extra="forbid")
    sources: list[MixSourceSpec] = Field(min_length=1)
    total: int | None = Field(default=None, ge=0, description="Output size (default: largest "
                              "mix needing no upsampling).")
    temperature: float | None = Field(default=None, gt=0, description="p ~ size ** (1/T).")
    seed: int = Field(default=0, ge=0, description="Same seed, same mix.")
    replacement: Replacement = Field(default="auto", description="auto: upsample only a "
                                     "source too small for its share; never; always.")


@dataclass
class MixResult:
    """The mix; ``rejects`` are the sources' unreadable records, ``unsampled`` one
    ``not_sampled`` reject per record a source had that the mix did not draw."""

    frame: pl.DataFrame
    report: MixReport
    rejects: list[dict] = field(default_factory=list)
    rows_in: int = 0
    formats: dict[str, str] = field(default_factory=dict)  # file sources' input formats
    unsampled: list[dict] = field(default_factory=list)


def run_mix(params: MixParams, base_dir: str | os.PathLike = ".",
            main: pl.DataFrame | None = None) -> MixResult:
    """Read every source of ``params`` and mix them; read rejects are returned, not lost.

    ``main`` is the frame a spec without ``path`` stands for (the recipe's own records).
    """
    from sftdata.convert import read_canonical

    loaded, rejects, rows_in, formats = [], [], 0, {}
    for spec in params.sources:
        name = spec.source_name()
        if spec.path is None:
            if main is None:
                raise UserError(f"mix source {name!r} has no path and there are no records to mix")
            frame, rows_in = main, rows_in + main.height
        else:
            read = read_canonical(Path(base_dir) / spec.path, fmt=spec.format, source=name)
            frame, rows_in = read.frame, rows_in + read.rows_in
            rejects.extend(read.rejects)
            formats[name] = read.format
        loaded.append(MixSource(name, frame, spec.weight))
    ratios = {s.source_name(): s.ratio for s in params.sources if s.ratio is not None}
    caps = {s.source_name(): s.cap for s in params.sources if s.cap is not None}
    outcome = mix_with_unsampled(
        loaded, total=params.total, ratios=ratios or None, temperature=params.temperature,
        caps=caps or None, seed=params.seed, replacement=params.replacement,
    )
    unsampled = [make_reject(source=name, stage="mix", reason="not_sampled", record=record, id=record["id"])
                 for name, left in outcome.unsampled.items() for record in records_from_frame(left)]
    return MixResult(outcome.frame, outcome.report, rejects, rows_in, formats, unsampled)

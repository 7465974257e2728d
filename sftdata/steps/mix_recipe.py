"""A mix as a recipe or the CLI describes it: the source specs, and reading their files.

``MixParams`` / ``MixSourceSpec`` are the ``mix:`` block of a recipe (and what ``sftdata
mix`` builds from its options); ``run_mix`` reads the files they name and hands the
frames to ``sftdata.steps.mix.mix_sources``, which does the mixing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata.errors import UserError
from sftdata.progress import advance, phase
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
            main: pl.DataFrame | None = None, read_all=None) -> MixResult:
    """Read every source of ``params`` and mix them; read rejects are returned, not lost.

    ``main`` is the frame a spec without ``path`` stands for (the recipe's own records).
    ``read_all`` reads the file sources, a list of ``(path, format, name)``, into
    ``ReadResult``s in order (the Ray engine reads them in parallel); default: one by one.
    """
    from sftdata.convert import read_canonical

    jobs = [(Path(base_dir) / spec.path, spec.format, spec.source_name()) for spec in params.sources if spec.path]
    reads = iter(read_all(jobs) if read_all else [read_canonical(p, fmt=f, source=n) for p, f, n in jobs])
    loaded, rejects, rows_in, formats = [], [], 0, {}
    for spec in params.sources:
        name = spec.source_name()
        if spec.path is None:
            if main is None:
                raise UserError(f"mix source {name!r} has no path and there are no records to mix")
            frame, rows_in = main, rows_in + main.height
        else:
            read = next(reads)
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


BUCKET_ROWS = 100_000  # output rows gathered and written at a time
BUFFERED_ROWS = 100_000  # drawn rows held before they are spilled to their buckets


@dataclass
class StreamedMix:
    report: MixReport
    rows_in: int
    rows_out: int
    formats: dict[str, str]


def stream_mix(params: MixParams, output: str | os.PathLike, to: str, rejected,
               base_dir: str | os.PathLike = ".", progress=None) -> StreamedMix:
    """``run_mix`` for file sources, file to file, in bounded memory.

    Each source is read batch by batch (its read rejects go to ``rejected``, a
    ``RejectsWriter``) and spilled to Arrow IPC (the rows the mix never draws go to
    ``rejected`` as ``not_sampled``); the mix is planned from the sizes alone
    (``plan_mix``: the same draws and order as ``mix_sources``); each drawn row is then
    sent to the bucket of its output position, and the buckets are sorted and written
    in order. At most one spilled batch, the rows being bucketed and one bucket are in
    memory at a time. ``progress`` (``sftdata.progress``) sees each phase: reading each
    source, drawing, writing.
    """
    import shutil
    import tempfile

    from sftdata.convert import BatchReader, RecordWriter
    from sftdata.records import FRAME_SCHEMA
    from sftdata.steps.mix import plan_mix

    if any(spec.path is None for spec in params.sources):
        raise UserError("a streamed mix reads files: every source needs a path")
    output = Path(output)
    spill = Path(tempfile.mkdtemp(prefix=".sftdata-mix.", dir=output.parent if output.parent.exists() else None))
    try:
        sources, parts, sizes, rows_in, formats = [], [], [], 0, {}
        for k, spec in enumerate(params.sources):
            name = spec.source_name()
            phase(progress, f"reading {name}")
            reader = BatchReader(Path(base_dir) / spec.path, spec.format, source=name, progress=progress)
            source_parts, size = [], 0
            for i, batch in enumerate(reader):
                rejected.add(batch.rejects)
                path = spill / f"s{k}-{i:06d}.arrow"
                batch.frame.select(FRAME_SCHEMA.names()).with_columns(
                    pl.lit(name, dtype=pl.String).alias("source")).write_ipc(path, compression="uncompressed")
                source_parts.append((path, size, batch.frame.height))
                size += batch.frame.height
            sources.append(MixSource(name, pl.DataFrame(), spec.weight))
            parts.append(source_parts)
            sizes.append(size)
            rows_in += reader.rows_in
            formats[name] = reader.format
        ratios = {s.source_name(): s.ratio for s in params.sources if s.ratio is not None}
        caps = {s.source_name(): s.cap for s in params.sources if s.cap is not None}
        plan = plan_mix(sources, sizes, params.total, ratios or None, params.temperature, caps or None,
                        params.seed, params.replacement)
        _reject_undrawn(plan, parts, sizes, rejected)
        position = np.empty_like(plan.order)
        position[plan.order] = np.arange(len(plan.order))  # where each concatenated row goes
        buckets: dict[int, list[Path]] = {}
        buffer: dict[int, list[pl.DataFrame]] = {}
        buffered, offset = 0, 0

        def flush() -> None:
            nonlocal buffered
            for b, frames in buffer.items():
                path = spill / f"b{b:06d}-{len(buckets.get(b, [])):06d}.arrow"
                pl.concat(frames).write_ipc(path, compression="uncompressed")
                buckets.setdefault(b, []).append(path)
            buffer.clear()
            buffered = 0

        phase(progress, "drawing", len(plan.order))
        for draws, source_parts in zip(plan.draws, parts):
            if draws is None:
                continue
            where = position[offset:offset + len(draws)]
            offset += len(draws)
            by_row = np.argsort(draws, kind="stable")
            rows, where = draws[by_row], where[by_row]
            for path, first, height in source_parts:
                lo, hi = np.searchsorted(rows, [first, first + height])
                if lo == hi:
                    continue
                taken = pl.read_ipc(path)[rows[lo:hi] - first].with_columns(pl.Series("_pos", where[lo:hi]))
                for (b,), group in taken.with_columns((pl.col("_pos") // BUCKET_ROWS).alias("_b")) \
                        .partition_by("_b", as_dict=True, include_key=False).items():
                    buffer.setdefault(b, []).append(group)
                buffered += hi - lo
                if buffered >= BUFFERED_ROWS:
                    flush()
            advance(progress, len(draws))
        flush()
        phase(progress, "writing", len(plan.order))
        with RecordWriter(output, to) as writer:
            for b in sorted(buckets):
                frame = pl.concat([pl.read_ipc(p) for p in buckets[b]]).sort("_pos").drop("_pos")
                rejected.add(writer.write(frame))
                advance(progress, frame.height)
        return StreamedMix(plan.report, rows_in, writer.rows, formats)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _reject_undrawn(plan, parts, sizes, rejected) -> None:
    """Every spilled row the plan never draws, as a ``not_sampled`` reject of the mix."""
    for k, (source_parts, size) in enumerate(zip(parts, sizes)):
        left = plan.undrawn(k, size)
        for path, first, height in source_parts:
            lo, hi = np.searchsorted(left, [first, first + height])
            if lo == hi:
                continue
            rows = pl.read_ipc(path)[left[lo:hi] - first]
            rejected.add_rejected(rows.with_columns(pl.lit("not_sampled").alias("reason"),
                                                    pl.lit(None, dtype=pl.String).alias("detail")), "mix")

"""Steps over a file, batch by batch: what ``sftdata filter``, ``dedup``,
``decontaminate`` (and ``convert``) run.

``run_file`` reads the input with ``BatchReader``, runs the steps on each batch with
``run_chain`` and writes the kept rows with ``RecordWriter``, while every reject goes
straight to the rejects file (``RejectsWriter``): memory stays bounded by the batch
size. Steps that must see every row first (``GlobalStep``: dedup) take two passes:
the first reads, runs the row-local steps before them, lets each global step
``observe`` the survivors and spills those rows to a temporary folder (Arrow IPC); the
global steps then ``decide`` in order (each seeing only what the ones before it
kept), get the ids they name, and the second pass ``split``s the spilled batches and
runs the steps after them. A list with a row-local step between two global steps is
run in memory instead (``run_chain`` on the whole file), as is a list with a step
that must see every row at once (``Step.row_local`` False: select, scores).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from sftdata.convert import BatchReader, RecordWriter
from sftdata.convert.rejectfile import RejectsWriter
from sftdata.progress import advance, phase
from sftdata.steps.base import GlobalStep, Step, StepReport, run_chain


@dataclass
class FileRun:
    """What ``run_file`` did: rows read and written, the input format, one report per
    step (added up over the batches), and rejects by reason (read, steps and write)."""

    rows_in: int
    rows_out: int
    format: str
    to: str
    reports: list[StepReport] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)


def _phases(steps: list[Step]) -> tuple[list[Step], list[GlobalStep], list[Step]] | None:
    """(row-local steps before the global ones, the global ones, row-local after), or
    None when a row-local step sits between two global ones or a step must see every
    row in one frame (``Step.row_local`` False)."""
    if any(not s.row_local and not isinstance(s, GlobalStep) for s in steps):
        return None
    first = next((i for i, s in enumerate(steps) if isinstance(s, GlobalStep)), len(steps))
    last = max((i for i, s in enumerate(steps) if isinstance(s, GlobalStep)), default=first - 1)
    middle = steps[first:last + 1]
    if not all(isinstance(s, GlobalStep) for s in middle):
        return None
    return steps[:first], middle, steps[last + 1:]


class _Reports:
    def __init__(self, steps: list[Step]):
        self.by_step: list[StepReport | None] = [None] * len(steps)

    def add(self, index: int, report: StepReport) -> None:
        have = self.by_step[index]
        self.by_step[index] = report if have is None else have.merged(report)

    def done(self, steps: list[Step]) -> list[StepReport]:
        """One report per step (a step that saw no batch: all zeros)."""
        return [r if r is not None else StepReport(step=s.name, rows_in=0, rows_out=0, drops={}, seconds=0.0,
                                                   params=s.params.model_dump(mode="json"))
                for r, s in zip(self.by_step, steps)]


def run_file(input: str | os.PathLike, output: str | os.PathLike, steps: list[Step],
             rejects: str | os.PathLike, to: str | None = None, fmt: str | None = None,
             progress: Callable[[int], None] | None = None, mapping=None, engine=None, **batching) -> FileRun:
    """Read ``input``, run ``steps``, write ``output`` in format ``to`` (default: the
    input's) and every reject to ``rejects``; see the module docstring. ``batching``
    (``batch_bytes``, ``batch_rows``) sets the batch size of the reader; ``mapping``
    (``sftdata.mapping.ColumnMapping``) renames the input's own layout. An ``engine``
    other than local (``sftdata.engine``: ray) runs each step on the whole file's frame,
    the step's work spread over its cluster."""
    reader = BatchReader(input, fmt, progress=progress, mapping=mapping, **batching)
    to = to or reader.format
    phases = _phases(steps)
    reports = _Reports(steps)
    with RejectsWriter(rejects) as rejected, RecordWriter(output, to) as writer:
        if engine is not None and engine.name != "local":
            frame = _whole(reader, rejected)
            for i, step in enumerate(steps):
                phase(progress, f"{step.name} on {engine.name}", None)
                result = engine.run_step(step, frame)
                rejected.add_rejected(result.rejected, step.name)
                reports.add(i, result.report)
                frame = result.kept
            rejected.add(writer.write(frame))
        elif phases is None or not phases[1]:
            batches = ((b.frame, b.rejects) for b in reader) if phases is not None else \
                [(_whole(reader, rejected), [])]
            for frame, read_rejects in batches:
                rejected.add(read_rejects)
                _local(frame, steps, 0, reports, rejected, writer)
        else:
            _two_passes(reader, *phases, reports, rejected, writer, progress)
    return FileRun(reader.rows_in, writer.rows, reader.format, to, reports.done(steps), dict(rejected.counts))


def _whole(reader: BatchReader, rejected: RejectsWriter) -> pl.DataFrame:
    frames = []
    for batch in reader:
        rejected.add(batch.rejects)
        frames.append(batch.frame)
    return pl.concat(frames) if frames else pl.DataFrame()


def _local(frame: pl.DataFrame, steps: list[Step], first: int, reports: _Reports,
           rejected: RejectsWriter, writer: RecordWriter | None) -> pl.DataFrame:
    """Run row-local ``steps`` (numbered from ``first``) on a batch; write what is kept
    when ``writer`` is given."""
    result = run_chain(frame, steps)
    for i, ((name, rows), report) in enumerate(zip(result.rejected, result.reports)):
        rejected.add_rejected(rows, name)
        reports.add(first + i, report)
    if writer is not None:
        rejected.add(writer.write(result.kept))
    return result.kept


def _two_passes(reader: BatchReader, before: list[Step], global_steps: list[GlobalStep], after: list[Step],
                reports: _Reports, rejected: RejectsWriter, writer: RecordWriter,
                progress: Callable[[int], None] | None = None) -> None:
    spill = Path(tempfile.mkdtemp(prefix=".sftdata-spill.", dir=Path(writer.path).parent))
    seconds = [0.0] * len(global_steps)  # observe + decide time, added to the reports
    try:
        for step in global_steps:
            step.reset()
        parts, spilled = [], 0
        for batch in reader:  # pass 1: observe what the steps before keep, and spill it
            rejected.add(batch.rejects)
            kept = _local(batch.frame, before, 0, reports, rejected, None)
            shared: dict = {}  # texts the global steps derive from this batch, made once
            for i, step in enumerate(global_steps):
                start = time.perf_counter()
                step.observe(kept, shared)
                seconds[i] += time.perf_counter() - start
            part = spill / f"{len(parts):06d}.arrow"
            kept.write_ipc(part, compression="uncompressed")  # read back once: no compression
            parts.append(part)
            spilled += kept.height
        alive = None
        for i, step in enumerate(global_steps):
            phase(progress, f"{step.name}: deciding", None)
            start = time.perf_counter()
            step.decide(alive)
            wanted = step.wants_ids()
            ids = (pl.scan_ipc(parts).select("id").collect()["id"].gather(wanted).to_list()
                   if parts and len(wanted) else [])
            step.give_ids(ids)
            dropped = step.dropped()
            alive = ~dropped if alive is None else alive & ~dropped
            seconds[i] += time.perf_counter() - start
        offset, first_after = 0, len(before) + len(global_steps)
        phase(progress, "writing", spilled)
        for n, part in enumerate(parts):  # pass 2: split each spilled batch, run the steps after
            frame = pl.read_ipc(part)
            keep = np.ones(frame.height, dtype=bool)
            for i, step in enumerate(global_steps):
                start, rows_in = time.perf_counter(), int(keep.sum())
                _, rows, step_keep = step.split(frame, offset)  # rows: only what this step drops
                keep &= step_keep.to_numpy()
                rejected.add_rejected(rows, step.name)
                report = step.report(rows_in, int(keep.sum()), rows, start)
                if n == 0:
                    report = report.model_copy(update={"seconds": round(report.seconds + seconds[i], 4)})
                reports.add(len(before) + i, report)
            offset += frame.height
            _local(frame.filter(pl.Series(keep)), after, first_after, reports, rejected, writer)
            advance(progress, frame.height)
    finally:
        shutil.rmtree(spill, ignore_errors=True)

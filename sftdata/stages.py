"""The data stages of ``sftdata run`` as one abstraction, and the one loop that runs them.

A stage kind is a small object: a ``name``, ``key(previous_key)`` (a hash of its inputs
and params, chained to the stage before it) and ``run(frame, ctx)`` returning its records,
its rejects and a typed ``StageReport``. ``run_stages`` loads each stage from the stage
cache or runs it (on the run's engine), saves it, logs it and meters it: a new kind of
stage is a new class and an entry in ``plan_stages``, never a change to the loop.

Read stages ``append`` (every input's records are put together before the steps); the
others take the frame of the stage before them. The audit's facts travel in the typed
report (``StageReport.input``, ``.generate``, ``.mix``, ``.formats``), not in ad-hoc keys.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import polars as pl

from sftdata import __version__
from sftdata.io import atomic_path, read_complete_lines, write_frame, write_rows
from sftdata.machine import CostMeter
from sftdata.ownership import folder_is_ours, mark_folder
from sftdata.records import empty_frame
from sftdata.rejects import count_reasons, rejects_from_frame
from sftdata.steps.base import StepReport

Log = Callable[[str], None]


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts (and the sftdata version)."""
    blob = json.dumps([__version__, *parts], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=6).hexdigest()


def file_digest(path: Path) -> str:
    """Hash of a file's bytes, so an edited input invalidates its stage."""
    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class StageReport(StepReport):
    """A stage's counts (``StepReport``) and the facts the audit needs from it."""

    input: dict | None = None  # read: what the file held (``sftdata.audit.InputInfo.as_dict``)
    generate: dict | None = None  # read of a generate block: the generation summary
    mix: dict | None = None  # mix: the ``MixReport``
    formats: dict[str, str] | None = None  # mix: the input format behind each source

    def as_dict(self) -> dict:
        """The report as summary.json and the audit show it (facts a stage lacks left out)."""
        return self.model_dump(exclude_none=True)


@dataclass
class Stage:
    """A finished stage: its records, what it rejected, and its report."""

    name: str
    key: str
    frame: pl.DataFrame
    rejects: list[dict]
    report: StageReport
    cached: bool = False


@dataclass
class RunContext:
    """What a stage may use: the recipe's folder, the run directory, the log, the engine
    the steps run on, and the stages finished before it."""

    base: Path
    run_dir: Path
    log: Log
    engine: object
    done: list[Stage] = field(default_factory=list)


class StageKind:
    """One kind of stage (subclasses: ``ReadStage``, ``StepStage``, ``MixStage``)."""

    name: str = ""
    appends: ClassVar[bool] = False  # True: the records join the earlier stages' (inputs)

    def key(self, previous: str) -> str:
        raise NotImplementedError

    def run(self, frame: pl.DataFrame, ctx: RunContext) -> tuple[pl.DataFrame, list[dict], StageReport]:
        raise NotImplementedError


@dataclass
class StageStore:
    """The ``stages/`` folder: one sub-folder per finished stage, named by index and key."""

    root: Path
    kept: list[Path] = field(default_factory=list)

    def folder(self, index: int, name: str, key: str) -> Path:
        return self.root / f"{index:02d}-{name.replace(':', '_')}-{key}"

    def load(self, index: int, name: str, key: str) -> Stage | None:
        folder = self.folder(index, name, key)
        if not (folder / "frame.parquet").exists():  # written last: present = complete
            return None
        self.kept.append(folder)
        report = StageReport.model_validate_json((folder / "report.json").read_text(encoding="utf-8"))
        return Stage(name, key, pl.read_parquet(folder / "frame.parquet"),
                     read_complete_lines(folder / "rejects.jsonl"), report, cached=True)

    def save(self, index: int, stage: Stage) -> None:
        folder = self.folder(index, stage.name, stage.key)
        mark_folder(folder)
        write_rows(folder / "rejects.jsonl", stage.rejects)
        with atomic_path(folder / "report.json") as tmp:
            tmp.write_text(json.dumps(stage.report.as_dict(), indent=2, default=str), encoding="utf-8")
        write_frame(folder / "frame.parquet", stage.frame)
        self.kept.append(folder)

    def prune(self) -> None:
        """Remove stage folders no longer part of the recipe (older keys); only folders
        sftdata made (marked) are removed, anything else under ``stages/`` stays."""
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder not in self.kept and folder_is_ours(folder):
                    shutil.rmtree(folder, ignore_errors=True)


def stage_report(name: str, rows_in: int, rows_out: int, rejects: list[dict], start: float, **facts) -> StageReport:
    return StageReport(step=name, rows_in=rows_in, rows_out=rows_out, drops=count_reasons(rejects),
                       seconds=round(time.perf_counter() - start, 3), **facts)


class StepStage(StageKind):
    """A registered step over the frame, run on the run's engine."""

    def __init__(self, step_name: str, params: dict, digests: list[str]):
        self.name, self.params, self.digests = step_name, params, digests

    def key(self, previous: str) -> str:
        return fingerprint(previous, self.name, self.params, self.digests)

    def run(self, frame, ctx):
        from sftdata.steps.registry import get_step

        result = ctx.engine.run_step(get_step(self.name)(self.params), frame)
        return (result.kept, rejects_from_frame(result.rejected, self.name),
                StageReport.model_validate(result.report.model_dump()))


def _log_stage(log: Log, stage: Stage) -> None:
    log(f"{stage.name:<28} {stage.report.rows_in:>7,} -> {stage.frame.height:>7,}"
        + ("  (cached)" if stage.cached else ""))


def run_stages(plan: list[StageKind], ctx: RunContext, meter: CostMeter) -> tuple[list[Stage], pl.DataFrame, str]:
    """Load or run every stage of ``plan`` in order, each a phase of ``meter``; returns
    the stages, the final records and the key that identifies them. Stage folders of
    older keys are pruned at the end."""
    store = StageStore(ctx.run_dir / "stages")
    appended: list[Stage] = []
    frame, key = None, ""
    for index, kind in enumerate(plan):
        if not kind.appends and frame is None:  # the first stage after the inputs
            frame = pl.concat([s.frame for s in appended], how="vertical") if appended else empty_frame()
            key = fingerprint([s.key for s in appended])
        stage_key = kind.key(key)
        with meter.phase(kind.name):
            stage = store.load(index, kind.name, stage_key)
            if stage is None:
                out, rejects, report = kind.run(frame if frame is not None else empty_frame(), ctx)
                stage = Stage(kind.name, stage_key, out, rejects, report)
                store.save(index, stage)
        _log_stage(ctx.log, stage)
        ctx.done.append(stage)
        if kind.appends:
            appended.append(stage)
        else:
            frame, key = stage.frame, stage_key
    if frame is None:
        frame = pl.concat([s.frame for s in appended], how="vertical") if appended else empty_frame()
        key = fingerprint([s.key for s in appended])
    store.prune()
    return ctx.done, frame, key

"""``sftdata run``: build a data set from a recipe, audit it, then train on it.

Each stage (one per input, one per step, the mix) writes its result to
``<run_dir>/stages/NN-<stage>-<key>/`` where ``key`` hashes the stage's inputs (the
previous stage's key, or the input file's bytes) and its params. Running again reuses
every stage whose key is unchanged, so a change recomputes only the changed stage and
those after it; a killed run starts again from the last finished stage (generation and
training resume from their own checkpoints). The run directory ends with the data, the
rejects, the audit report, the trained adapter and ``summary.json``, which also says what
the run cost: wall time and peak RSS per stage (``cost``).

Safety: before anything runs, ``sftdata.run_checks`` checks every file the recipe reads
and the run directory; the run then holds the directory's lock (``sftdata.runlock``).
The run directory, each stage folder and ``train/`` carry sftdata's marker
(``sftdata.ownership``), and only marked folders are ever pruned or replaced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from sftdata import __version__
from sftdata.audit.inputs import InputInfo
from sftdata.convert import read_canonical, write_records
from sftdata.engine import Engine, check_engine, get_engine
from sftdata.errors import UserError
from sftdata.io import atomic_path, read_complete_lines, write_frame, write_rows
from sftdata.machine import CostMeter
from sftdata.ownership import folder_is_ours, mark_folder
from sftdata.recipe import InputSpec, Recipe
from sftdata.rejects import count_reasons, rejects_from_frame
from sftdata.records import FRAME_SCHEMA, empty_frame
from sftdata.run_checks import GENERATE_PATHS, LOCK_NAME, TRAIN_PATHS, check_run, in_recipe_folder
from sftdata.runlock import exclusive
from sftdata.steps.base import StepReport
from sftdata.steps.registry import get_step

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


@dataclass
class Stage:
    """A finished stage: its records, what it rejected, and its report."""

    name: str
    key: str
    frame: pl.DataFrame
    rejects: list[dict]
    report: dict
    cached: bool = False


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
        return Stage(name, key, pl.read_parquet(folder / "frame.parquet"),
                     read_complete_lines(folder / "rejects.jsonl"),
                     json.loads((folder / "report.json").read_text(encoding="utf-8")), cached=True)

    def save(self, index: int, stage: Stage) -> None:
        folder = self.folder(index, stage.name, stage.key)
        mark_folder(folder)
        write_rows(folder / "rejects.jsonl", stage.rejects)
        with atomic_path(folder / "report.json") as tmp:
            tmp.write_text(json.dumps(stage.report, indent=2, default=str), encoding="utf-8")
        write_frame(folder / "frame.parquet", stage.frame)
        self.kept.append(folder)

    def prune(self) -> None:
        """Remove stage folders no longer part of the recipe (older keys); only folders
        sftdata made (marked) are removed, anything else under ``stages/`` stays."""
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder not in self.kept and folder_is_ours(folder):
                    shutil.rmtree(folder, ignore_errors=True)


def _read_input(spec: InputSpec, base: Path, run_dir: Path, key: str, log: Log
                ) -> tuple[pl.DataFrame, list[dict], int, dict]:
    """Read one input file, or generate it first (resumable, keyed output file)."""
    extra: dict = {}
    if spec.generate is not None:
        from sftdata.generate import GenerateConfig, generate
        from sftdata.generate.progress import GenerationProgress

        out = run_dir / "generate" / f"{spec.source_name()}-{key}.jsonl"
        options = {**spec.generate, "output": str(out)}
        for name in GENERATE_PATHS:
            if options.get(name) is not None:
                options[name] = str(in_recipe_folder(base, options[name]))
        cfg = GenerateConfig.model_validate(options)
        with GenerationProgress(cfg.num) as bar:
            summary = generate(cfg, on_start=bar.on_start, on_event=bar.on_event)
        extra["generate"] = summary.to_dict()
        log(f"generated with {summary.backend} / {summary.model}: {summary.records} records, "
            f"{summary.requests} requests, {summary.total_tokens:,} tokens")
        if not summary.complete:
            log(f"warning: generation stopped at {summary.records} of {spec.generate.get('num', 20)} "
                "records (request budget); run again to continue")
        path = out
    else:
        path = base / spec.path
    result = read_canonical(path, fmt=spec.format, source=spec.source_name())
    extra["input"] = InputInfo.from_read(path, spec.source_name(), result).as_dict()  # for the audit
    frame = result.frame.with_columns(pl.lit(spec.source_name()).alias("source"))
    return frame, result.rejects, result.rows_in, extra


def resolve_step_params(step_name: str, params: dict, base: Path) -> tuple[dict, list[str]]:
    """A step's params with its file params made absolute (against the recipe's folder),
    and the digests of those files (so editing an eval set re-runs decontamination)."""
    resolved, digests = dict(params), []
    for key in get_step(step_name).path_params:
        value = resolved.get(key)
        if value is None:
            continue
        paths = [str(base / p) for p in (value if isinstance(value, list) else [value])]
        digests += [file_digest(Path(p)) if Path(p).is_file() else "missing" for p in paths]
        resolved[key] = paths if isinstance(value, list) else paths[0]
    return resolved, digests


def _report(name: str, rows_in: int, rows_out: int, rejects: list[dict], start: float, **extra) -> dict:
    return {**StepReport(step=name, rows_in=rows_in, rows_out=rows_out, drops=count_reasons(rejects),
                         seconds=round(time.perf_counter() - start, 3)).model_dump(), **extra}


def _log_stage(log: Log, stage: Stage) -> None:
    log(f"{stage.name:<28} {stage.report['rows_in']:>7,} -> {stage.frame.height:>7,}"
        + ("  (cached)" if stage.cached else ""))


def _inputs(stages: list[Stage]) -> list[InputInfo]:
    """What the read stages learnt of their files (stages cached by older versions lack it)."""
    return [InputInfo.from_dict(s.report["input"]) for s in stages if "input" in s.report]


def _mix_formats(recipe: Recipe, file_formats: dict[str, str], stages: list[Stage]) -> dict[str, str]:
    """The input format behind each mix source, for the audit: a file source's own, and
    for the recipe's records the format of its inputs ("mixed" when they differ)."""
    read = {info.format for info in _inputs(stages)}
    if not read:
        return dict(file_formats)
    own = next(iter(read)) if len(read) == 1 else "mixed"
    return {**file_formats, **{spec.source_name(): own for spec in recipe.mix.sources if spec.path is None}}


def build_stages(recipe: Recipe, base: Path, run_dir: Path, log: Log, meter: CostMeter,
                 engine: Engine | None = None) -> tuple[list[Stage], pl.DataFrame, str]:
    """Run (or reuse) every data stage of the recipe in order (each a phase of ``meter``),
    the steps and the mix on ``engine`` (default: the recipe's).

    Returns the stages, the final records (all inputs together when there are no steps
    and no mix) and the key that identifies them. The engine is not part of any key:
    both engines give the same records, so either reuses the other's stages.
    """
    engine = engine or get_engine(recipe.engine, log)
    store = StageStore(run_dir / "stages")
    stages: list[Stage] = []
    index = 0
    for spec in recipe.inputs:
        origin = spec.generate if spec.generate is not None else file_digest(base / spec.path)
        key = fingerprint("read", spec.model_dump(), origin)
        name = f"read:{spec.source_name()}"
        with meter.phase(name):
            stage = store.load(index, name, key)
            if stage is None:
                start = time.perf_counter()
                frame, rejects, rows_in, extra = _read_input(spec, base, run_dir, key, log)
                stage = Stage(name, key, frame, rejects, _report(name, rows_in, frame.height, rejects, start, **extra))
                store.save(index, stage)
        _log_stage(log, stage)
        stages.append(stage)
        index += 1

    frame = pl.concat([s.frame for s in stages], how="vertical") if stages else empty_frame()
    key = fingerprint([s.key for s in stages])
    for step_name, params in recipe.step_list():
        params, digests = resolve_step_params(step_name, params, base)
        key = fingerprint(key, step_name, params, digests)
        with meter.phase(step_name):
            stage = store.load(index, step_name, key)
            if stage is None:
                result = engine.run_step(get_step(step_name)(params), frame)
                stage = Stage(step_name, key, result.kept, rejects_from_frame(result.rejected, step_name),
                              result.report.model_dump())
                store.save(index, stage)
        _log_stage(log, stage)
        frame = stage.frame
        stages.append(stage)
        index += 1

    if recipe.mix is not None:
        files = [file_digest(base / s.path) for s in recipe.mix.sources if s.path]
        key = fingerprint(key, "mix", recipe.mix.model_dump(), files)
        with meter.phase("mix"):
            stage = store.load(index, "mix", key)
            if stage is None:
                mixed = engine.run_mix(recipe.mix, base, frame)
                # Records a source had but the mix did not draw are dropped as `not_sampled`:
                # they are in the rejects like every other dropped record.
                rejects = mixed.rejects + mixed.unsampled
                report = mixed.report.step_report().model_dump()
                report.update(rows_in=mixed.rows_in, drops={**report["drops"], **count_reasons(rejects)},
                              mix=mixed.report.model_dump(), formats=_mix_formats(recipe, mixed.formats, stages))
                stage = Stage("mix", key, mixed.frame.select(FRAME_SCHEMA.names()), rejects, report)
                store.save(index, stage)
        _log_stage(log, stage)
        stages.append(stage)
        frame = stage.frame
    store.prune()
    return stages, frame, key


def write_outputs(recipe: Recipe, run_dir: Path, stages: list[Stage], frame: pl.DataFrame
                  ) -> tuple[Path, Path, list[dict]]:
    """The built data in the recipe's format, and every stage's rejects in one file."""
    data_path = run_dir / recipe.output.file
    write_rejected = write_records(frame, data_path, recipe.output.format)
    rejects = [r for s in stages for r in s.rejects] + write_rejected
    rejects_path = run_dir / "rejects.jsonl"
    write_rows(rejects_path, rejects)
    return data_path, rejects_path, write_rejected


def write_audit(recipe: Recipe, run_dir: Path, stages: list[Stage], frame: pl.DataFrame, key: str) -> Path | None:
    """report.html + stats.json for the final data, with every stage's counts."""
    if not recipe.audit.enabled:
        return None
    html = run_dir / "report.html"
    marker = run_dir / ".audit.key"
    if html.exists() and marker.exists() and marker.read_text() == key:
        return html
    from sftdata.audit import compute_stats, render_report

    inputs = _inputs(stages)
    read_rejects = sum((Counter(info.rejects_by_reason) for info in inputs), Counter())
    mix = next((s.report for s in stages if s.name == "mix"), {})
    stats = compute_stats(frame, inputs=inputs or None, read_rejects=dict(read_rejects),
                          source_formats=mix.get("formats"), sample_count=recipe.audit.samples,
                          title=f"sftdata run: {recipe.name}")
    render_report(stats, [s.report for s in stages], html_path=html, json_path=run_dir / "stats.json")
    marker.write_text(key)
    return html


def _sample_prompts(frame: pl.DataFrame, count: int) -> list[list[dict]]:
    """A few records' turns up to their first answer (system prompt included), seeded."""
    if frame.height == 0 or count == 0:
        return []
    picked = frame.sample(n=min(count, frame.height), seed=0)["messages"].to_list()
    prompts = []
    for messages in picked:
        first_answer = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
        prompts.append([{"role": m["role"], "content": m["content"]} for m in messages[:first_answer]])
    return prompts


def _samples(model: str | Path | None, prompts: list, max_new_tokens: int) -> list[tuple[str, str]]:
    """Greedy answers of a model (a folder, an adapter, or the bundled one) to ``prompts``."""
    if not prompts:
        return []
    from sftdata.trainer import generate_samples, load_trained

    loaded, tokenizer = load_trained(model)
    return generate_samples(loaded, tokenizer, prompts, max_new_tokens=max_new_tokens)


def run_training(recipe: Recipe, run_dir: Path, data_path: Path, data_key: str,
                 frame: pl.DataFrame, log: Log, meter: CostMeter, base: Path = Path(".")) -> dict:
    """Train on the built data; reuse a finished run with the same key, resume a killed one.

    Before/after samples are made here rather than by the trainer, so that the same
    prompts (with their system prompt) go to the base model and to the trained one.
    The samples and the trainer's own phases are phases of ``meter``.
    """
    from sftdata.trainer import TrainConfig, train

    options = dict(recipe.train or {})
    for name in TRAIN_PATHS:
        if options.get(name) is not None:
            options[name] = str(in_recipe_folder(base, options[name]))
    prompts = options.pop("sample_prompts", None) or _sample_prompts(frame, options.get("num_samples", 2))
    max_new = options.get("sample_max_new_tokens", 64)
    options.setdefault("save_every", 5)
    out = run_dir / "train"
    key = fingerprint(data_key, recipe.train)
    marker = run_dir / "train.json"
    state = json.loads(marker.read_text()) if marker.exists() else {}
    if state.get("key") == key and state.get("done"):
        log(f"{'train':<28} (cached) {out}")
        return state
    resume = state.get("key") == key and out.exists()
    if not resume and out.exists():
        if not folder_is_ours(out):
            raise UserError(f"{out} exists and sftdata did not make it; move it away (the run "
                            "trains into this folder)")
        shutil.rmtree(out)
    mark_folder(out)
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({"key": key, "done": False}), encoding="utf-8")
    with meter.phase("train: samples before"):
        before = _samples(options.get("model"), prompts, max_new)
    config = TrainConfig.model_validate({**options, "data": str(data_path), "data_format": recipe.output.format,
                                         "output_dir": str(out), "resume": resume, "num_samples": 0})
    log(f"{'train':<28} {'resuming' if resume else 'starting'} {config.method} -> {out}")
    result = train(config)
    meter.add([{**phase, "name": f"train: {phase['name']}"} for phase in result.cost.get("phases", [])])
    with meter.phase("train: samples after"):
        after = _samples(result.output_dir, prompts, max_new)
    state = {"key": key, "done": True, "output_dir": str(result.output_dir), "steps": result.steps,
             "train_loss": result.train_loss, "eval_loss": result.eval_loss,
             "initial_eval_loss": result.initial_eval_loss,
             "first_loss": result.losses[0] if result.losses else None,
             "trained_tokens": result.trained_tokens, "seconds": result.seconds,
             "trained_tokens_per_s": result.trained_tokens_per_s, "cost": result.cost,
             "samples": [{"prompt": p, "before": b, "after": a} for (p, b), (_, a) in zip(before, after)]}
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
    return state


def run_recipe(recipe: Recipe, recipe_path: Path, log: Log = print, train: bool = True,
               wait: bool = False, engine: str | None = None) -> dict:
    """Check, then build, write, audit and (when the recipe has a train block) train;
    returns the summary. A second run of the same run directory stops with a one-line
    error naming the process that holds it, or waits for it with ``wait=True``.
    ``engine`` (local or ray) overrides the recipe's."""
    if engine is not None:
        recipe = recipe.model_copy(update={"engine": check_engine(engine)})
    run_dir = check_run(recipe, recipe_path)
    mark_folder(run_dir)
    with exclusive(run_dir / LOCK_NAME, f"the run directory {run_dir}", wait=wait, log=log):
        return _run_locked(recipe, Path(recipe_path), run_dir, log, train)


def _run_locked(recipe: Recipe, recipe_path: Path, run_dir: Path, log: Log, train: bool) -> dict:
    start = time.perf_counter()
    meter = CostMeter()
    base = recipe_path.resolve().parent
    engine = get_engine(recipe.engine, log)
    stages, frame, key = build_stages(recipe, base, run_dir, log, meter, engine)
    with meter.phase("write"):
        data_path, rejects_path, write_rejected = write_outputs(recipe, run_dir, stages, frame)
    data_key = fingerprint(key, recipe.output.model_dump())
    with meter.phase("audit"):
        report = write_audit(recipe, run_dir, stages, frame, fingerprint(data_key, recipe.audit.model_dump()))
    summary = {
        "recipe": str(recipe_path), "run_dir": str(run_dir), "engine": recipe.engine, "data": str(data_path),
        "records": frame.height - len(write_rejected), "rejects": str(rejects_path),
        "rejected_by_reason": count_reasons([r for s in stages for r in s.rejects] + write_rejected),
        "report": str(report) if report else None,
        "stages": [{**s.report, "cached": s.cached} for s in stages],
    }
    if engine.stats:
        summary["engine_stats"] = engine.stats  # e.g. the bytes the Ray shuffles moved
    if recipe.train is not None and train:
        summary["train"] = run_training(recipe, run_dir, data_path, data_key, frame, log, meter, base)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["cost"] = meter.close()
    with atomic_path(run_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return summary

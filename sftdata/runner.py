"""``sftdata run``: build a data set from a recipe, audit it, then train on it.

The data stages are ``sftdata.stages`` kinds (``ReadStage`` and ``MixStage`` here,
``StepStage`` there) run by its one loop, ``run_stages``. Each stage (one per input, one
per step, the mix) writes its result to
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

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import polars as pl

from sftdata.audit.inputs import InputInfo
from sftdata.convert import read_canonical, write_records
from sftdata.engine import Engine, check_engine, get_engine
from sftdata.errors import UserError
from sftdata.io import atomic_path, write_rows
from sftdata.machine import CostMeter
from sftdata.ownership import folder_is_ours, mark_folder
from sftdata.recipe import InputSpec, Recipe
from sftdata.rejects import count_reasons
from sftdata.records import FRAME_SCHEMA
from sftdata.run_checks import GENERATE_PATHS, LOCK_NAME, TRAIN_PATHS, check_run, in_recipe_folder
from sftdata.runlock import exclusive
from sftdata.stages import (Log, RunContext, Stage, StageKind, StageReport, StepStage, file_digest, fingerprint,
                            run_stages, stage_report)
from sftdata.steps.registry import get_step


class ReadStage(StageKind):
    """One input file, or a generate block (generated first: resumable, keyed output)."""

    appends = True

    def __init__(self, spec: InputSpec, base: Path):
        self.spec, self.name = spec, f"read:{spec.source_name()}"
        self.origin = spec.generate if spec.generate is not None else file_digest(base / spec.path)

    def key(self, previous: str) -> str:
        return fingerprint("read", self.spec.model_dump(), self.origin)

    def run(self, frame, ctx):
        start = time.perf_counter()
        spec, facts = self.spec, {}
        if spec.generate is not None:
            path, facts["generate"] = _generate(spec, ctx, self.key(""))
        else:
            path = ctx.base / spec.path
        result = read_canonical(path, fmt=spec.format, source=spec.source_name())
        facts["input"] = InputInfo.from_read(path, spec.source_name(), result).as_dict()  # for the audit
        out = result.frame.with_columns(pl.lit(spec.source_name()).alias("source"))
        return out, result.rejects, stage_report(self.name, result.rows_in, out.height, result.rejects, start, **facts)


def _generate(spec: InputSpec, ctx: RunContext, key: str) -> tuple[Path, dict]:
    from sftdata.generate import GenerateConfig, generate
    from sftdata.generate.progress import GenerationProgress

    out = ctx.run_dir / "generate" / f"{spec.source_name()}-{key}.jsonl"
    options = {**spec.generate, "output": str(out)}
    for name in GENERATE_PATHS:
        if options.get(name) is not None:
            options[name] = str(in_recipe_folder(ctx.base, options[name]))
    cfg = GenerateConfig.model_validate(options)
    with GenerationProgress(cfg.num) as bar:
        summary = generate(cfg, on_start=bar.on_start, on_event=bar.on_event)
    ctx.log(f"generated with {summary.backend} / {summary.model}: {summary.records} records, "
            f"{summary.requests} requests, {summary.total_tokens:,} tokens")
    if not summary.complete:
        ctx.log(f"warning: generation stopped at {summary.records} of {spec.generate.get('num', 20)} "
                "records (request budget); run again to continue")
    return out, summary.to_dict()


class MixStage(StageKind):
    """The recipe's mix of the built records with other files (on the run's engine)."""

    name = "mix"

    def __init__(self, recipe: Recipe, base: Path):
        self.recipe = recipe
        self.files = [file_digest(base / s.path) for s in recipe.mix.sources if s.path]

    def key(self, previous: str) -> str:
        return fingerprint(previous, "mix", self.recipe.mix.model_dump(), self.files)

    def run(self, frame, ctx):
        mixed = ctx.engine.run_mix(self.recipe.mix, ctx.base, frame)
        # Records a source had but the mix did not draw are dropped as `not_sampled`:
        # they are in the rejects like every other dropped record.
        rejects = mixed.rejects + mixed.unsampled
        report = mixed.report.step_report()
        report = StageReport(**{**report.model_dump(), "rows_in": mixed.rows_in,
                                "drops": {**report.drops, **count_reasons(rejects)}},
                             mix=mixed.report.model_dump(),
                             formats=_mix_formats(self.recipe, mixed.formats, ctx.done))
        return mixed.frame.select(FRAME_SCHEMA.names()), rejects, report


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


def _inputs(stages: list[Stage]) -> list[InputInfo]:
    """What the read stages learnt of their files."""
    return [InputInfo.from_dict(s.report.input) for s in stages if s.report.input is not None]


def _mix_formats(recipe: Recipe, file_formats: dict[str, str], stages: list[Stage]) -> dict[str, str]:
    """The input format behind each mix source, for the audit: a file source's own, and
    for the recipe's records the format of its inputs ("mixed" when they differ)."""
    read = {info.format for info in _inputs(stages)}
    if not read:
        return dict(file_formats)
    own = next(iter(read)) if len(read) == 1 else "mixed"
    return {**file_formats, **{spec.source_name(): own for spec in recipe.mix.sources if spec.path is None}}


def plan_stages(recipe: Recipe, base: Path) -> list[StageKind]:
    """The recipe's data stages in order: one read per input, one per step, the mix."""
    plan: list[StageKind] = [ReadStage(spec, base) for spec in recipe.inputs]
    for step_name, params in recipe.step_list():
        plan.append(StepStage(step_name, *resolve_step_params(step_name, params, base)))
    if recipe.mix is not None:
        plan.append(MixStage(recipe, base))
    return plan


def build_stages(recipe: Recipe, base: Path, run_dir: Path, log: Log, meter: CostMeter,
                 engine: Engine | None = None) -> tuple[list[Stage], pl.DataFrame, str]:
    """Run (or reuse) every data stage of the recipe in order (each a phase of ``meter``),
    the steps and the mix on ``engine`` (default: the recipe's).

    Returns the stages, the final records (all inputs together when there are no steps
    and no mix) and the key that identifies them. The engine is not part of any key:
    both engines give the same records, so either reuses the other's stages.
    """
    ctx = RunContext(base, run_dir, log, engine or get_engine(recipe.engine, log))
    return run_stages(plan_stages(recipe, base), ctx, meter)


def write_outputs(recipe: Recipe, run_dir: Path, stages: list[Stage], frame: pl.DataFrame
                  ) -> tuple[Path, Path, list[dict]]:
    """The built data in the recipe's format, and every stage's rejects in one file."""
    data_path = run_dir / recipe.output.file
    write_rejected = write_records(frame, data_path, recipe.output.format)
    rejects = [r for s in stages for r in s.rejects] + write_rejected
    # rejects.jsonl sits in the run directory, not in the data's folder when the data has
    # one (output.file: data/train.jsonl), so a loader pointed at that folder reads the data only
    rejects_path = run_dir / "rejects.jsonl"
    write_rows(rejects_path, rejects)
    for tool in recipe.output.emit:
        from sftdata.emit_files import emit_config

        emit_config(data_path, tool, recipe.output.format, replace=True)
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
    mix = next((s.report for s in stages if s.name == "mix"), None)
    stats = compute_stats(frame, inputs=inputs or None, read_rejects=dict(read_rejects),
                          source_formats=mix.formats if mix else None, sample_count=recipe.audit.samples,
                          title=f"sftdata run: {recipe.name}")
    render_report(stats, [s.report.as_dict() for s in stages], html_path=html, json_path=run_dir / "stats.json")
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
        "stages": [{**s.report.as_dict(), "cached": s.cached} for s in stages],
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

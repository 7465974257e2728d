"""Commands: ``filter``, ``dedup``, ``decontaminate``, ``steps``, ``score`` and ``select``.

Each reads any supported format, runs its steps over the canonical frame, writes the
kept records (format chosen by ``--to``, default: the input's), and writes every
dropped record to the rejects file with the step's reason code and detail.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from sftdata.cli.app import app
from sftdata.cli.common import (
    ENGINE,
    JSON,
    QUIET,
    Format,
    check_paths,
    console,
    exit_for_strict,
    print_summary,
    progress,
    rejects_note,
    rejects_target,
    summary_mode,
)
from sftdata.formats import check_format
from sftdata.io import extension
from sftdata.paths import Target
from sftdata.rejects import default_rejects_path

INPUT = typer.Argument(..., help="Input file (.json, .jsonl, .parquet, .csv), any format.")
OUTPUT = typer.Option(..., "-o", "--output", help="Output file; its extension picks the file type.")
TO = typer.Option(None, "--to", help="Output format (default: the input's).")
REJECTS = typer.Option(None, "--rejects", help="Rejects file (default: <output folder>/.rejects/<stem>.rejects.jsonl; none when there is none).")
STRICT = typer.Option(False, "--strict", help="Exit with status 1 if any record is dropped or rejected.")


def _step(name: str, params: dict):
    """A registered step from CLI options; a bad option value is a one-line error."""
    from pydantic import ValidationError

    from sftdata.errors import UserError
    from sftdata.steps.registry import build_step

    try:
        return build_step(name, params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or name
        raise UserError(f"{name}: {where}: {err['msg']}") from None


def _run(title: str, input: Path, output: Path, to: Optional[str], rejects: Optional[Path],
         strict: bool, steps: list, also_read: tuple[Path, ...] = (), engine: Optional[str] = None) -> None:
    """Read, run ``steps`` batch by batch, write output and rejects, print the summary.

    ``also_read``: other files the steps read (evaluation sets), which no output may be.
    ``engine``: ``ray`` runs the steps on a Ray cluster (``sftdata.engine``).
    """
    from sftdata.engine import get_engine
    from sftdata.stream import run_file

    to = to.value if isinstance(to, Enum) else to
    if to is not None:
        check_format(to)
    extension(output)  # fail on a bad output name before reading anything
    rejects_path = rejects or default_rejects_path(output)
    check_paths([Target("-o", output), rejects_target(rejects, rejects_path)], inputs=[input, *also_read])
    with progress(f"{title} {input.name}") as bar:
        done = run_file(input, output, steps, rejects_path, to=to, progress=bar,
                        engine=get_engine(engine, console.print) if engine else None)
    timing = ", ".join(f"{r.step} {r.seconds:.2f}s" for r in done.reports)
    by_reason = dict(sorted(done.rejected.items(), key=lambda kv: -kv[1]))
    print_summary(
        f"{title} {input.name} ({done.format}) -> {output.name} ({done.to})",
        done.rows_in, done.rows_out, by_reason,
        [f"steps:   {timing}", f"output:  {output}", rejects_note(rejects_path, sum(done.rejected.values()))],
        facts={"output": str(output), "rejects": str(rejects_path) if done.rejected else None,
               "format": done.format, "to": done.to},
    )
    exit_for_strict(strict, sum(done.rejected.values()))


@app.command("filter")
def filter_command(
    input: Path = INPUT,
    output: Path = OUTPUT,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML filter config (default: the built-in default set; see `sftdata steps`)."),
    to: Optional[Format] = TO,
    rejects: Optional[Path] = REJECTS,
    strict: bool = STRICT,
    quiet: bool = QUIET,
    as_json: bool = JSON,
    engine: Optional[str] = ENGINE,
) -> None:
    """Drop low-quality records with the default filter set or a YAML config."""
    from sftdata.steps.filters import default_filter_steps, load_filter_config

    steps = load_filter_config(config, note=lambda text: console.print(f"[yellow]note: {text}[/yellow]")) \
        if config else default_filter_steps()
    summary_mode(quiet, as_json)
    _run("filter", input, output, to, rejects, strict, steps, also_read=(config,) if config else (), engine=engine)


@app.command()
def dedup(
    input: Path = INPUT,
    output: Path = OUTPUT,
    threshold: float = typer.Option(0.7, "--threshold", min=0.01, max=1.0, help="Estimated Jaccard at or above which records are near-duplicates."),
    exact_only: bool = typer.Option(False, "--exact-only", help="Only drop exact duplicates (after normalisation)."),
    fields: str = typer.Option("both", "--fields", help="Compare prompt, response or both."),
    keep: str = typer.Option("first", "--keep", help="Which copy survives: first, longest or quality (meta.quality_score)."),
    num_perm: int = typer.Option(128, "--num-perm", help="MinHash permutations."),
    ngram: int = typer.Option(3, "--ngram", help="Shingle size in words (CJK: characters)."),
    to: Optional[Format] = TO,
    rejects: Optional[Path] = REJECTS,
    strict: bool = STRICT,
    quiet: bool = QUIET,
    as_json: bool = JSON,
    engine: Optional[str] = ENGINE,
) -> None:
    """Drop exact duplicates, then MinHash LSH near-duplicates; each reject names the
    record it duplicates."""
    common = {"fields": fields, "keep": keep}
    steps = [_step("exact_dedup", common)]
    if not exact_only:
        steps.append(_step("near_dedup", {**common, "threshold": threshold,
                                          "num_perm": num_perm, "ngram": ngram}))
    summary_mode(quiet, as_json)
    _run("dedup", input, output, to, rejects, strict, steps, engine=engine)


@app.command()
def decontaminate(
    input: Path = INPUT,
    output: Path = OUTPUT,
    against: list[Path] = typer.Option(..., "--against", help="Eval file(s) in any format; repeat the option for several."),
    n: int = typer.Option(13, "-n", "--ngram", help="n-gram size in words (CJK: characters)."),
    fields: str = typer.Option("both", "--fields", help="Training text to check: prompt, response or both."),
    eval_fields: str = typer.Option("prompt", "--eval-fields", help="Eval text to take n-grams from: prompt, response or both."),
    to: Optional[Format] = TO,
    rejects: Optional[Path] = REJECTS,
    strict: bool = STRICT,
    quiet: bool = QUIET,
    as_json: bool = JSON,
    engine: Optional[str] = ENGINE,
) -> None:
    """Drop training records that share an n-gram with evaluation data."""
    step = _step("decontaminate", {"against": [str(p) for p in against], "n": n,
                                   "fields": fields, "eval_fields": eval_fields})
    summary_mode(quiet, as_json)
    _run("decontaminate", input, output, to, rejects, strict, [step], also_read=tuple(against), engine=engine)


@app.command()
def steps(
    as_json: bool = typer.Option(False, "--json", help="Print the steps and their params' JSON Schemas."),
) -> None:
    """List every registered step with its params (usable in filter configs and recipes)."""
    from sftdata.steps.registry import all_steps

    registry = all_steps()
    if as_json:
        typer.echo(json.dumps({name: {"doc": (cls.__doc__ or "").strip(),
                                      "params": cls.Params.model_json_schema()}
                               for name, cls in registry.items()}, indent=2))
        return
    for name, cls in registry.items():
        doc = " ".join((cls.__doc__ or "").split())
        typer.echo(f"{name}: {doc}")
        codes = getattr(cls, "reason_codes", ())
        if codes:
            typer.echo(f"    reasons: {', '.join(codes)}")
        for field_name, field in cls.Params.model_fields.items():
            default = "required" if field.is_required() else f"default {json.dumps(field.default, default=str)}"
            typer.echo(f"    {field_name} ({default}): {field.description or ''}")
    console.print(f"{len(registry)} steps", style="dim")


def _parse_sets(items: list[str]) -> dict:
    """``key=value`` pairs (values parsed as YAML: numbers, booleans, lists) into params."""
    import yaml

    from sftdata.errors import UserError

    params = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: use key=value")
        params[key.replace("-", "_")] = yaml.safe_load(raw)
    return params


@app.command()
def score(
    step: str = typer.Argument(..., help="perplexity, ifd, judge, reward, semantic_dedup (or any registered step)."),
    input: Path = INPUT,
    output: Path = OUTPUT,
    set_: list[str] = typer.Option([], "--set", "-s", help="A step param as key=value (repeat), e.g. --set model=/models/qwen --set batch_tokens=8192."),
    to: Optional[Format] = TO,
    rejects: Optional[Path] = REJECTS,
    strict: bool = STRICT,
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Score every record with a model-based step; the score goes to meta.<step> (see
    `sftdata steps` for each step's params and which way its score points)."""
    summary_mode(quiet, as_json)
    _run(f"score {step}", input, output, to, rejects, strict, [_step(step, _parse_sets(set_))])


@app.command("select")
def select_command(
    input: Path = INPUT,
    output: Path = OUTPUT,
    by: list[str] = typer.Option(..., "--by", help="meta key to rank by; repeat as KEY:WEIGHT for a weighted combination (e.g. --by ifd:1 --by judge:0.5)."),
    top: Optional[int] = typer.Option(None, "--top", help="Keep this many records."),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="Keep this share of the records."),
    lowest: bool = typer.Option(False, "--lowest", help="Low scores are best (e.g. perplexity)."),
    per_source: bool = typer.Option(False, "--per-source", help="Apply the budget within each source."),
    diversity: str = typer.Option("none", "--diversity", help="none, deita (skip records too close to one taken) or kcenter."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Other select params as key=value (similarity, normalise, fields...)."),
    to: Optional[Format] = TO,
    rejects: Optional[Path] = REJECTS,
    strict: bool = STRICT,
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Keep the best records under a budget by a meta score; the rest go to the rejects
    file as not_selected, with their scores."""
    if len(by) == 1 and ":" not in by[0]:
        ranked: str | dict = by[0]
    else:
        ranked = {}
        for item in by:
            key, _, weight = item.partition(":")
            ranked[key] = float(weight or 1.0)
    params = {"by": ranked, "top": top, "fraction": fraction, "lowest": lowest,
              "per_source": per_source, "diversity": diversity, **_parse_sets(set_)}
    summary_mode(quiet, as_json)
    _run("select", input, output, to, rejects, strict, [_step("select", params)])

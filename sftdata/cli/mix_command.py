"""Command: ``mix`` - combine domain and general data in exact proportions."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.table import Table

from sftdata.cli.app import app
from sftdata.cli.common import (
    JSON,
    QUIET,
    Format,
    check_paths,
    console,
    exit_for_strict,
    option_error,
    print_summary,
    progress,
    rejects_note,
    rejects_target,
    showing_tables,
    summary_mode,
)
from sftdata.errors import UserError
from sftdata.formats import check_format
from sftdata.io import atomic_path
from sftdata.convert import RejectsWriter
from sftdata.paths import Target
from sftdata.rejects import default_rejects_path
from sftdata.steps.mix_recipe import MixParams, MixSourceSpec, stream_mix

_NAME = re.compile(r"^[\w.-]+$")


def parse_source(text: str) -> MixSourceSpec:
    """``[NAME=]PATH[:WEIGHT]`` -> a source spec (the name defaults to the file stem).

    >>> parse_source("general=data/alpaca.jsonl:0.5").model_dump(exclude_none=True)
    {'path': 'data/alpaca.jsonl', 'name': 'general', 'weight': 0.5}
    """
    name = None
    head, sep, tail = text.partition("=")
    if sep and _NAME.match(head):
        name, text = head, tail
    path, weight = text, None
    base, sep, tail = text.rpartition(":")
    if sep and base:
        try:
            weight = float(tail)
        except ValueError:
            weight = None
        else:
            path = base
            if not (weight >= 0 and math.isfinite(weight)):
                raise UserError(f"--source {text}: weight must be a number >= 0")
    return MixSourceSpec(path=path, name=name, weight=weight)


def parse_pairs(option: str, items: list[str], kind: type) -> dict:
    """``["a=0.5", "b=0.25"]`` -> ``{"a": 0.5, "b": 0.25}``; a one-line error otherwise."""
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = kind(value)
        except ValueError:
            raise UserError(f"{option} {item}: expected NAME={'N' if kind is int else 'FRACTION'}") from None
    return out


def print_mix_table(report) -> None:
    """Per source: available, taken, target and actual share, upsampled, capped."""
    table = Table(title=f"mix ({report.mode}, seed {report.seed})", title_justify="left")
    for column in ("source", "available", "taken", "target", "actual", "upsampled", "capped"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for s in report.sources:
        table.add_row(
            s.name, f"{s.available:,}", f"{s.taken:,}", f"{s.target_fraction:.1%}",
            f"{s.fraction:.1%}", f"{s.upsampled:,}" if s.upsampled else "-",
            "yes" if s.capped else "-",
        )
    table.add_row("total", f"{sum(s.available for s in report.sources):,}", f"{report.total:,}",
                  "", "", "", "", style="bold")
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")


@app.command()
def mix(
    output: Path = typer.Option(..., "-o", "--output", help="Output file; its extension picks the file type."),
    source: list[str] = typer.Option(..., "--source", "-s", help="[NAME=]PATH[:WEIGHT] (repeat). NAME defaults to the file stem and becomes each record's `source`."),
    total: Optional[int] = typer.Option(None, "--total", "-n", min=1, help="Records in the output (default: the largest mix that needs no upsampling)."),
    ratio: list[str] = typer.Option([], "--ratio", help="NAME=FRACTION of the output (repeat); sources without one share the rest."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", help="Share ~ size^(1/T): 1 = natural sizes, larger = flatter."),
    cap: list[str] = typer.Option([], "--cap", help="NAME=N: take at most N records from this source (repeat)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same mix)."),
    no_replacement: bool = typer.Option(False, "--no-replacement", help="Never upsample: a source too small for its share is an error."),
    with_replacement: bool = typer.Option(False, "--with-replacement", help="Draw every source with replacement (bootstrap)."),
    to: Format = typer.Option("canonical", "--to", help="Output format (only canonical keeps `source`)."),
    from_: Optional[Format] = typer.Option(None, "--from", help="Input format of every source (default: detected per file)."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Rejects file (default: <output folder>/.rejects/<stem>.rejects.jsonl; none when there is none)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the mix report as JSON (for the audit)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 if any record is rejected as invalid (not_sampled records do not count)."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Mix sources (e.g. domain + general data) in exact proportions, shuffled.

    Sources are sampled without replacement while they have enough records; a source
    too small for its share is upsampled (the summary says so) unless --no-replacement.
    The rejects file holds the unreadable records and, as `not_sampled`, every record a
    source had that the mix did not draw.
    """
    summary_mode(quiet, as_json)
    to, from_ = to.value, from_.value if from_ else None
    check_format(to)
    if no_replacement and with_replacement:
        raise UserError("--no-replacement and --with-replacement contradict each other")
    specs = [parse_source(s) for s in source]
    ratios = parse_pairs("--ratio", ratio, float)
    caps = parse_pairs("--cap", cap, int)
    names = [s.source_name() for s in specs]
    for option, given in (("--ratio", ratios), ("--cap", caps)):
        for name in given:
            if name not in names:
                raise UserError(f"{option} names unknown source {name!r}; sources: {', '.join(names)}")
    for spec in specs:
        spec.format = from_
        spec.ratio = ratios.get(spec.source_name())
        spec.cap = caps.get(spec.source_name())
    try:
        params = MixParams(
            sources=specs, total=total, temperature=temperature, seed=seed,
            replacement="never" if no_replacement else "always" if with_replacement else "auto",
        )
    except ValidationError as exc:
        raise option_error(exc, {"sources": "--source"}) from None
    rejects_path = rejects or default_rejects_path(output)
    targets = [Target("-o", output), rejects_target(rejects, rejects_path)]
    if report:
        targets.append(Target("--report", report, "file"))
    check_paths(targets, inputs=[s.path for s in specs])
    with RejectsWriter(rejects_path) as rejected, progress(f"mix -> {output.name}") as bar:
        result = stream_mix(params, output, to, rejected, progress=bar)  # bounded memory: sources are spilled
    if showing_tables():
        print_mix_table(result.report)
    notes = [f"output:  {output}", rejects_note(rejects_path, rejected.total)]
    if report:
        with atomic_path(report) as tmp:
            tmp.write_text(json.dumps(result.report.model_dump(mode="json"), indent=2), encoding="utf-8")
        notes.append(f"report:  {report}")
    print_summary(
        f"mix -> {output.name}",
        result.rows_in, result.rows_out, dict(sorted(rejected.counts.items(), key=lambda kv: -kv[1])), notes,
        facts={"output": str(output), "rejects": str(rejects_path) if rejected.total else None,
               "mix": result.report.model_dump(mode="json")},
    )
    # Records the mix did not draw are in the rejects file, but they are not errors.
    exit_for_strict(strict, rejected.total - rejected.counts.get("not_sampled", 0))

"""Command: ``sftdata audit INPUT...``: statistics and an HTML report of data files."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from sftdata.cli.app import app
from sftdata.cli.common import QUIET, Format, check_paths, console, print_json, progress, showing_tables, summary_mode
from sftdata.paths import Target
from sftdata.rejects import count_reasons

DEFAULT_HTML = Path("audit.html")


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _print_summary(stats: dict, notes: list[str]) -> None:
    """The headline figures on one screen; the report has the rest."""
    table = Table(title=f"audit: {stats['records']:,} records", show_header=False,
                  title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for s in stats["sources"]:
        table.add_row(f"  {s['source']} ({s['format'] or '?'})", f"{s['records']:,}")
    rejected = sum(stats["read_rejects"].values())
    if rejected:
        table.add_row("rejected at read", f"{rejected:,}")
    conv = stats["conversations"]
    table.add_row("multi-turn", _pct(conv["multi_turn"]["share"]))
    table.add_row("system prompt", _pct(conv["system_prompts"]["share"]))
    table.add_row("tools", _pct(conv["tools"]["share"]))
    table.add_row("reasoning (reasoning_content)", _pct(conv["reasoning"]["share"]))
    if stats["empty_input"]["available"]:
        table.add_row("Alpaca empty input", _pct(stats["empty_input"]["share"]))
    for key, label in (("instruction", "instruction"), ("response", "response")):
        d = stats["lengths"][key]["tokens"]
        table.add_row(f"{label} {stats['lengths']['token_unit']} (median / p99)",
                      f"{d['p50']:g} / {d['p99']:g}")
    sections = (("duplicates", "exact duplicates", lambda s: s["exact"]["rate"]),
                ("duplicates", "near duplicates", lambda s: s["near"]["rate"]),
                ("filters", "hit by a default filter", lambda s: s["rate"]),
                ("refusals", "refusals", lambda s: s["rate"]))
    for key, label, value in sections:
        section = stats[key]
        table.add_row(label, _pct(value(section)) if section["available"] else "n/a")
    console.print(table)
    for note in notes:
        console.print(note)


@app.command()
def audit(
    inputs: List[Path] = typer.Argument(..., help="Data files (.json, .jsonl, .parquet, .csv) in any format."),
    html: Optional[Path] = typer.Option(None, "--html", help=f"HTML report to write (default {DEFAULT_HTML} when --json is not given either)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the statistics as JSON here ('-': print them on stdout, for scripts)."),
    from_: Optional[Format] = typer.Option(None, "--from", help="Input format of every file (default: detected per file)."),
    samples: int = typer.Option(5, "--samples", min=0, help="How many random records to show."),
    seed: int = typer.Option(0, "--seed", help="Seed for picking the samples."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Local tokenizer folder: lengths in its tokens instead of words (needs transformers)."),
    full: bool = typer.Option(False, "--full", help="Run the default filters and language detection on every record (default: on a random 10,000 when there are more)."),
    title: str = typer.Option("sftdata audit", "--title", help="Report title."),
    quiet: bool = QUIET,
) -> None:
    """Statistics and a self-contained HTML report: sources, turns, lengths, languages,
    duplicates, default-filter hits (dry-run), refusals, leading words and samples."""
    from sftdata.audit import compute_stats, read_inputs, render_report
    from sftdata.audit.stats import ESTIMATE_LIMIT

    to_stdout = json_path == Path("-")
    summary_mode(quiet, to_stdout)
    json_path = None if to_stdout else json_path
    from_ = from_.value if from_ else None
    if html is None and json_path is None and not to_stdout:
        html = DEFAULT_HTML
    check_paths([Target(label, path, "file") for label, path in (("--html", html), ("--json", json_path)) if path],
                inputs=inputs)
    with progress("reading") as bar:
        read = read_inputs(inputs, from_, progress=bar)
    with console.status("computing statistics") if showing_tables() else nullcontext():
        stats = compute_stats(read.frame, inputs=read.inputs, read_rejects=count_reasons(read.rejects),
                              tokenizer=str(tokenizer) if tokenizer else None,
                              sample_count=samples, seed=seed, title=title,
                              estimate_limit=None if full else ESTIMATE_LIMIT)
    render_report(stats, html_path=html, json_path=json_path)
    notes = [f"{label}: {path}" for label, path in (("report", html), ("stats", json_path)) if path]
    if to_stdout:
        print_json(stats)
    elif showing_tables():
        _print_summary(stats, notes)

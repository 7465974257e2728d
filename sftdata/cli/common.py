"""What every command shares: the summary table, a progress bar that appears only on
slow inputs, what a run cost, and the exit rule for ``--strict``."""

from __future__ import annotations

import json
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sftdata.errors import UserError
from sftdata.formats import FORMAT_NAMES
from sftdata.paths import Target, check_targets
from sftdata.progress import Bar

console = Console(stderr=True, highlight=False)
# The format names as a choice: shell completion and --help list them.
Format = Enum("Format", {name: name for name in FORMAT_NAMES}, type=str)


# `--engine` of `sftdata run` and of the stage commands (sftdata.engine).
ENGINE = typer.Option(None, "--engine", help="Where the steps compute: local (this process) or ray (the "
                      "Ray cluster at RAY_ADDRESS, else a local one; pip install 'sftdata[ray]'). Same output.")


def check_paths(targets: Iterable[Target], inputs: Iterable = ()) -> None:
    """Refuse unsafe output paths before any work (``sftdata.paths``); say which existing
    files sftdata did not write are about to be replaced."""
    for warning in check_targets(targets, inputs):
        console.print(f"[yellow]{warning}[/yellow]")


def option_error(exc, options: dict[str, str] | None = None) -> UserError:
    """A pydantic ``ValidationError`` of a model built from CLI options, as one line that
    names the option (``options`` maps field names to option names where they differ)."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    name = (options or {}).get(field, "--" + field.replace("_", "-"))
    return UserError(f"{name}: {err['msg']}")


def rejects_target(given: Optional[Path], default: Path) -> Target:
    """The rejects file as a path check sees it: ``--rejects`` or the default beside the output."""
    return Target("--rejects" if given else "rejects file", given or default, "jsonl")


class SummaryMode(str, Enum):
    """How a command reports at the end: the table (default), nothing, or JSON on stdout."""

    table = "table"
    quiet = "quiet"
    json = "json"


_mode = SummaryMode.table
QUIET = typer.Option(False, "--quiet", "-q", help="Print no summary (errors still go to stderr).")
JSON = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout, for scripts.")


def print_json(obj: dict) -> None:
    """``--json``: one JSON object on stdout (everything else sftdata prints goes to stderr)."""
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))


def summary_mode(quiet: bool, as_json: bool) -> SummaryMode:
    """Set how ``print_summary`` reports for this command (``--quiet`` / ``--json``)."""
    global _mode
    if quiet and as_json:
        raise UserError("--quiet and --json: pick one")
    _mode = SummaryMode.quiet if quiet else (SummaryMode.json if as_json else SummaryMode.table)
    return _mode


def showing_tables() -> bool:
    """True unless ``--quiet`` or ``--json`` asked for no tables on the terminal."""
    return _mode is SummaryMode.table


def rejects_note(path: Path, count: int) -> str:
    """Where the rejects went: ``none`` when there were none (no file is written then)."""
    return f"rejects: {count:,} in {path}" if count else "rejects: none"


def print_summary(
    title: str,
    records_in: int,
    records_out: int,
    rejects_by_reason: dict[str, int],
    notes: list[str] | None = None,
    facts: dict | None = None,
) -> None:
    """One screen: records in, out, rejected by reason, and any notes (output paths...).

    With ``--json`` the same as one JSON object on stdout (``facts`` added to it); with
    ``--quiet`` nothing. The title is printed on its own line, so it never wraps to the
    width of the table below it.
    """
    if _mode is SummaryMode.quiet:
        return
    if _mode is SummaryMode.json:
        print_json({"title": title, "records_in": records_in, "records_out": records_out,
                    "rejected": sum(rejects_by_reason.values()),
                    "rejected_by_reason": rejects_by_reason, **(facts or {})})
        return
    console.print(f"[bold]{escape(title)}[/bold]", soft_wrap=True)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records in", f"{records_in:,}")
    table.add_row("records out", f"{records_out:,}")
    table.add_row("rejected", f"{sum(rejects_by_reason.values()):,}")
    for reason, count in list(rejects_by_reason.items())[:15]:
        table.add_row(f"  {reason}", f"{count:,}")
    if len(rejects_by_reason) > 15:
        table.add_row("  (other reasons)", f"{sum(list(rejects_by_reason.values())[15:]):,}")
    console.print(table)
    for note in notes or []:
        console.print(note, soft_wrap=True)


@contextmanager
def progress(description: str, total: int | None = None, delay: float = 1.5) -> Iterator[Bar]:
    """``with progress("converting", total=n) as bar: work(progress=bar)``: a
    ``sftdata.progress.Bar``, silent on fast inputs and under ``--quiet`` / ``--json``."""
    bar = Bar(description, total, delay, enabled=showing_tables())
    try:
        yield bar
    finally:
        bar.close()


def print_cost(cost: dict, title: str = "what it cost") -> None:
    """Wall time and peak RSS per phase (a ``sftdata.machine.CostMeter`` report), then the total."""
    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    table.add_column("s", justify="right")
    table.add_column("peak RSS (MiB)", justify="right")
    for phase in cost.get("phases", []):
        table.add_row(phase["name"], f"{phase['seconds']:,.1f}", f"{phase['peak_rss_mb']:,.0f}")
    table.add_row("[bold]total[/bold]", f"[bold]{cost['seconds']:,.1f}[/bold]", f"[bold]{cost['peak_rss_mb']:,.0f}[/bold]")
    console.print(table)


def exit_for_strict(strict: bool, rejected: int) -> None:
    """``--strict``: any reject makes the command exit with status 1."""
    if strict and rejected:
        console.print(f"[red]--strict: {rejected} record(s) rejected[/red]")
        raise typer.Exit(1)

"""Command: ``run`` (a recipe: build, audit, then train)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from sftdata.cli.app import app
from sftdata.cli.common import ENGINE, JSON, QUIET, console, print_cost, print_json, summary_mode


def _print_summary(summary: dict) -> None:
    table = Table(title="where the data went", title_justify="left")
    for column in ("stage", "in", "out", "dropped by reason", "s"):
        table.add_column(column, justify="left" if column in ("stage", "dropped by reason") else "right")
    for stage in summary["stages"]:
        drops = ", ".join(f"{k} {v}" for k, v in stage["drops"].items()) or "-"
        table.add_row(stage["step"] + (" (cached)" if stage["cached"] else ""), f"{stage['rows_in']:,}",
                      f"{stage['rows_out']:,}", drops, f"{stage['seconds']:.1f}")
    console.print(table)
    console.print(f"data:    {summary['data']} ({summary['records']:,} records)")
    console.print(f"rejects: {summary['rejects']}")
    if summary.get("report"):
        console.print(f"report:  {summary['report']}")
    train = summary.get("train")
    if train:
        held = (f", held-out loss {train['initial_eval_loss']:.3f} -> {train['eval_loss']:.3f}"
                if train.get("initial_eval_loss") is not None and train.get("eval_loss") is not None else "")
        speed = f", {train['trained_tokens_per_s']:,.1f} trained tokens/s" if train.get("trained_tokens_per_s") else ""
        console.print(f"adapter: {train['output_dir']}  ({train['steps']} steps, loss "
                      f"{train['first_loss']:.3f} -> {train['train_loss']:.3f}{held}{speed})")
        for sample in train.get("samples", []):
            console.print(f"\n[bold]prompt:[/bold] {sample['prompt'][:300]}")
            console.print(f"[bold]before:[/bold] {sample['before'][:300]}")
            console.print(f"[bold]after:[/bold]  {sample['after'][:300]}")
    if summary.get("cost"):
        console.print()
        print_cost(summary["cost"], "what the run cost")
    console.print(f"\nsummary: {Path(summary['run_dir']) / 'summary.json'}  ({summary['seconds']} s)")


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a recipe value: key.path=value (repeatable)."),
    no_train: bool = typer.Option(False, "--no-train", help="Build (and audit) the data only."),
    check: bool = typer.Option(False, "--check", help="Only validate: the recipe, the files it reads and its run directory."),
    wait: bool = typer.Option(False, "--wait", help="If another run holds the run directory, wait for it instead of stopping."),
    engine: Optional[str] = ENGINE,
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Run a recipe: build the data set stage by stage (cached), audit it, then train.

    Everything is written inside the run directory, which one run at a time holds.
    """
    from sftdata.recipe import load_recipe
    from sftdata.run_checks import check_run
    from sftdata.runner import run_recipe

    summary_mode(quiet, as_json)
    parsed = load_recipe(recipe, set_ or [])
    if check:
        run_dir = check_run(parsed, recipe)
        if as_json:
            print_json({"recipe": str(recipe), "ok": True, "inputs": len(parsed.inputs), "steps": len(parsed.steps),
                        "mix": parsed.mix is not None, "train": parsed.train is not None, "run_dir": str(run_dir)})
        elif not quiet:
            console.print(f"{recipe}: ok ({len(parsed.inputs)} inputs, {len(parsed.steps)} steps"
                          f"{', mix' if parsed.mix else ''}{', train' if parsed.train is not None else ''};"
                          f" run directory {run_dir})")
        return
    log = console.print if not quiet else _warnings_only
    summary = run_recipe(parsed, recipe, log=log, train=not no_train, wait=wait, engine=engine)
    if as_json:
        print_json(summary)
    elif not quiet:
        _print_summary(summary)


def _warnings_only(text, *args, **kwargs) -> None:
    """``--quiet``: the run's log keeps only its warnings and notes."""
    if str(text).lstrip().lower().startswith(("warning", "note", "[yellow]")):
        console.print(text, *args, **kwargs)

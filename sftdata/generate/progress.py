"""A live view of a generation run, for ``sftdata generate`` and a recipe's generate inputs.

Two bars: records accepted of the goal (``num``) and requests made of the budget (the
run stops at whichever fills first), with the tokens so far and the candidates rejected.
It is driven by the pipeline's ``on_start`` / ``on_event`` callbacks.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column


def run_status(run: Any) -> str:
    """One short line: tokens so far and rejected candidates (the summary gives the reasons)."""
    tokens = run.totals.prompt_tokens + run.totals.completion_tokens
    return f"tokens {tokens:,} · rejected {sum(run.count.rejects.values())}"


class GenerationProgress:
    """``with GenerationProgress(num) as bar: generate(cfg, on_start=bar.on_start, on_event=bar.on_event)``."""

    def __init__(self, num: int, console: Console | None = None, enabled: bool = True):
        self.num = num
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.fields[label]}", table_column=Column(min_width=8, no_wrap=True)),
            BarColumn(bar_width=20), MofNCompleteColumn(table_column=Column(min_width=7, no_wrap=True)),
            TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True)),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=console or Console(stderr=True, highlight=False))
        self.records = self.requests = None

    def on_start(self, run: Any) -> None:
        if not self.enabled:
            return
        self.progress.start()
        self.records = self.progress.add_task(run_status(run), label="records", total=self.num,
                                              completed=min(run.count.accepted, self.num))
        self.requests = self.progress.add_task("", label="requests", total=run.budget,
                                               completed=run.totals.requests)

    def on_event(self, run: Any) -> None:
        if self.records is None:
            return
        self.progress.update(self.records, completed=min(run.count.accepted, self.num), description=run_status(run))
        self.progress.update(self.requests, completed=run.totals.requests)

    def stop(self) -> None:
        self.progress.stop()

    def __enter__(self) -> "GenerationProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

"""Progress bars: the one kind every command, step and the trainer shows.

A ``Bar`` is a rich bar on stderr that appears only once the work has taken longer
than ``delay`` seconds (fast inputs print nothing), with a total when one is known.
Library code takes progress as a plain callable of a count (``progress(n)``), so any
function works from Python; when the callable is a ``Bar`` (or anything with the same
``set_total`` / ``phase`` methods), ``set_total`` and ``phase`` below also give it the
total and the name of the phase under way.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

ProgressFn = Callable[[int], None]
_console = Console(stderr=True, highlight=False)


class Bar:
    """``bar = Bar("filter data.jsonl", total=n)``; ``bar(n)`` or ``bar.update(n)`` as
    work is done; ``bar.phase("writing", total)`` starts the next phase; ``bar.close()``.
    ``enabled=False`` shows nothing (``--quiet``, a step's ``progress: false``); ``keep``
    leaves the finished bar on screen (the trainer's), else it goes when closed; ``initial``
    is work already done (a resumed run)."""

    def __init__(self, description: str, total: int | None = None, delay: float = 1.5,
                 enabled: bool = True, unit: str = "records", console: Console | None = None,
                 keep: bool = False, initial: int = 0):
        self.title = self.description = description
        self.total, self.delay, self.enabled = total, delay, enabled
        self.unit, self.console, self.keep = unit, console or _console, keep
        self.start = time.monotonic()
        self.done, self.status_text = initial, ""
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, n: int = 1) -> None:
        self.update(n)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._show()

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._show()

    def phase(self, description: str, total: int | None = None) -> None:
        """Start the next phase of the same work (its own description, count and total)."""
        self.description, self.total, self.done = f"{self.title}: {description}", total, 0
        self._show()

    def status(self, text: str) -> None:
        """A short text after the bar (the latest loss, tokens per second...)."""
        self.status_text = text
        self._show()

    def _show(self) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if time.monotonic() - self.start <= self.delay:
                return
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn(self.unit), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"), console=self.console, transient=not self.keep)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total, status="")
        # A known total never shows less than the work done (totals of text files are estimates).
        total = max(self.total, self.done) if self.total is not None else None
        self.progress.update(self.task, description=self.description, completed=self.done, total=total,
                             status=self.status_text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def hide_library_bars() -> None:
    """Switch off the tqdm bars transformers and huggingface_hub print while loading a
    model ("Loading weights"), so sftdata's own bar is the only one. Set before they are
    imported (the environment variable) and after (their switch)."""
    import os
    import sys

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def advance(progress: ProgressFn | None, n: int) -> None:
    """Tell ``progress`` (any callable of a count, or None) that ``n`` more are done."""
    if progress is not None:
        progress(n)


def set_total(progress: ProgressFn | None, total: int | None) -> None:
    """Give ``progress`` the total count of the work, when it takes one."""
    if progress is not None and hasattr(progress, "set_total"):
        progress.set_total(total)


def phase(progress: ProgressFn | None, description: str, total: int | None = None) -> None:
    """Tell ``progress`` the next phase has begun, when it shows phases."""
    if progress is not None and hasattr(progress, "phase"):
        progress.phase(description, total)

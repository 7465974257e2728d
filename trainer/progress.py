"""The training bar: steps done of the run's total, elapsed and remaining time, and the
latest loss and trained tokens per second; the same rich bar as every sftdata command
(``sftdata.progress.Bar``), on stderr, on the main process only."""

from __future__ import annotations

from sftdata.progress import Bar


class StepBar:
    """``bar = StepBar(total, initial, enabled)``; ``bar.step(loss, tokens_per_s)`` after
    each optimizer step; ``bar.close()`` at the end (also when the run stops early)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        self.bar = Bar("training", total, delay=0, enabled=enabled, unit="steps", keep=True, initial=initial)

    def step(self, loss: float, tokens_per_s: float) -> None:
        self.bar.status(f"loss {loss:.4f} · {tokens_per_s:,.0f} tok/s")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

"""Early stopping on the eval loss, and which step's weights are the best.

``BestTracker.update(step, loss)`` after every eval says whether the loss improved (by
more than ``threshold``) and whether the run should stop (``patience`` evals in a row
without improvement). The loop keeps the best step's trainable weights on disk
(``output_dir/best/``) when ``load_best`` asks for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class BestTracker:
    """Lowest eval loss so far and the evals since it.

    >>> t = BestTracker(patience=2)
    >>> [t.update(s, l) for s, l in [(1, 2.0), (2, 1.5), (3, 1.6), (4, 1.55)]]
    [True, True, False, False]
    >>> (t.best_step, t.best_loss, t.should_stop)
    (2, 1.5, True)
    """

    patience: int | None = None
    threshold: float = 0.0
    best_step: int | None = None
    best_loss: float = math.inf
    bad_evals: int = 0

    def update(self, step: int, loss: float | None) -> bool:
        """Record an eval; True when it is the new best."""
        if loss is None or math.isnan(loss):
            return False
        if loss < self.best_loss - self.threshold or self.best_step is None:
            self.best_step, self.best_loss, self.bad_evals = step, loss, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

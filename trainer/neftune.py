"""NEFTune (Jain et al., 2023): uniform noise on the input embeddings while training.

The noise is drawn from U(-1, 1) and scaled by ``alpha / sqrt(L * d)`` for a row of L
tokens of width d, as in the paper and in TRL. A packed row counts all its tokens,
padding included (the rows of a micro-batch share one L). Only in training mode: held-out
loss and generations see the clean embeddings.
"""

from __future__ import annotations

import math
from typing import Any


def add_neftune(model: Any, alpha: float) -> Any:
    """Register the noise on ``model``'s input embeddings; returns the hook handle."""

    def noisy(module: Any, args: Any, output: Any) -> Any:
        if not module.training:
            return output
        scale = alpha / math.sqrt(output.size(-2) * output.size(-1))
        return output + output.new_empty(output.shape).uniform_(-scale, scale)

    return model.get_input_embeddings().register_forward_hook(noisy)

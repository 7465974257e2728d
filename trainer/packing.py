"""Batches: padding-free packed rows (best-fit decreasing) or length-grouped padded batches.

Packed: examples are placed into rows of at most ``row_length`` tokens by best-fit
decreasing; a micro-batch of ``batch_size`` rows is flattened into one ``[1, T]`` row
whose ``position_ids`` restart at 0 for every sequence. transformers reads those
restarts as sequence boundaries and masks attention block-diagonally, so packed
sequences never see each other - provided no ``attention_mask`` is passed and
``use_cache=False`` (with a cache the packed detection is skipped).

Unpacked: examples are sorted by length inside shuffled mega-batches, so each
micro-batch holds similar lengths and padding stays small.

Batch order is a pure function of (seed, epoch), which is what makes resuming exact.
"""

from __future__ import annotations

import bisect
import random
from typing import Any, Sequence

from .data import IGNORE, Example


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= capacity (longest first, tightest bin).

    >>> best_fit_decreasing([5, 3, 4, 2, 6], 8)
    [[4, 3], [0, 1], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin id), kept sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"sequence of {n} tokens does not fit a row of {capacity}")
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            space, b = free.pop(pos)
        else:
            space, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - n > 0:
            bisect.insort(free, (space - n, b))
    return bins


def epoch_batches(examples: Sequence[Example], batch_size: int, packing: bool,
                  row_length: int, seed: int, epoch: int) -> list[list[int]]:
    """The micro-batches (lists of example indices) of one epoch, in training order."""
    rng = random.Random(seed * 1_000_003 + epoch)
    lengths = [len(e) for e in examples]
    if packing:
        rows = best_fit_decreasing(lengths, row_length)
        rng.shuffle(rows)
        return [sum(rows[i:i + batch_size], []) for i in range(0, len(rows), batch_size)]
    order = list(range(len(examples)))
    rng.shuffle(order)
    mega = batch_size * 32
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: lengths[i], reverse=True)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate_packed(examples: Sequence[Example]) -> dict[str, Any]:
    """One flattened row: ``input_ids``, ``position_ids``, ``targets``, ``weights`` of shape [1, T]."""
    import torch

    ids, pos, tgt, wts = [], [], [], []
    for e in examples:
        ids += e.input_ids
        pos += range(len(e))
        tgt += e.targets
        wts += e.weights
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([pos], dtype=torch.long),
        "targets": torch.tensor([tgt], dtype=torch.long),
        "weights": torch.tensor([wts], dtype=torch.float32),
    }


def collate_padded(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded batch with ``attention_mask``; padding has weight 0."""
    import torch

    width = max(len(e) for e in examples)
    ids, mask, tgt, wts = [], [], [], []
    for e in examples:
        pad = width - len(e)
        ids.append(e.input_ids + [pad_id] * pad)
        mask.append([1] * len(e) + [0] * pad)
        tgt.append(e.targets + [IGNORE] * pad)
        wts.append(e.weights + [0.0] * pad)
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "targets": torch.tensor(tgt, dtype=torch.long),
        "weights": torch.tensor(wts, dtype=torch.float32),
    }


def collate(examples: Sequence[Example], packing: bool, pad_id: int) -> dict[str, Any]:
    """Packed or padded collation."""
    return collate_packed(examples) if packing else collate_padded(examples, pad_id)

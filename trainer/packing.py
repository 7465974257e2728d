"""Batches: padding-free packed rows (best-fit decreasing) or length-grouped padded batches.

Packed: examples are placed into rows of at most ``row_length`` tokens by best-fit
decreasing, and a micro-batch holds ``batch_size`` rows. ``position_ids`` restart at 0
for every sequence. How the rows reach the model depends on the attention kernel:

- sdpa and eager (the CPU kernels): a ``[rows, longest row]`` batch with an explicit
  additive mask ``[rows, 1, L, L]`` per row, causal inside each sequence and closed
  between sequences (built from the position ids). Attention costs rows x L^2 in time and
  memory. Flattening the rows into one ``[1, rows*L]`` sequence instead would make
  transformers build a dense mask over all of it, (rows*L)^2, and sdpa would turn that
  boolean mask into a float copy in every layer and keep it for the backward pass: on a
  2-core laptop that was most of a 7 GB peak. The one float mask here is shared by all
  layers, and with a mask given transformers never has to guess sequence boundaries, so
  a cache (eval mode) cannot make packed sequences see each other.
- kernels that read sequence boundaries from ``position_ids`` (flash attention,
  ``flattens_rows``): one flattened ``[1, T]`` row with no mask and no padding. There
  transformers detects the packing only when no ``attention_mask`` is passed and
  ``use_cache=False``.

A micro-batch may be run in parts of whole rows (``forward_parts``) to bound the tokens
of one forward pass; the loop normalises the loss by the trained tokens of the whole
step, so the gradient does not change.

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
    """Indices grouped into bins of total length <= capacity (longest first, tightest bin);
    an item longer than ``capacity`` gets a bin of its own.

    >>> best_fit_decreasing([5, 3, 4, 2, 6], 8)
    [[4, 3], [0, 1], [2]]
    >>> best_fit_decreasing([9, 3], 8)
    [[0], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin id), kept sorted
    for i in order:
        n = lengths[i]
        if n >= capacity:
            bins.append([i])
            continue
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


def flattens_rows(attn_implementation: str) -> bool:
    """True for attention kernels that take sequence boundaries from ``position_ids``
    (flash attention 2/3 and hub kernels of it): their packed rows are flattened."""
    return "flash" in attn_implementation


def split_rows(examples: Sequence[Example], row_length: int | None) -> list[list[Example]]:
    """Consecutive examples, a new row whenever the next one would overflow ``row_length``
    (``None``: all in one row).

    A micro-batch from ``epoch_batches`` is its rows one after another, each at most
    ``row_length`` long, so this gives back at most that many rows: a new row is only
    opened inside one of them, and the rest of that one fits.
    """
    rows: list[list[Example]] = []
    used = 0
    for e in examples:
        if not rows or (row_length is not None and used + len(e) > row_length):
            rows.append([])
            used = 0
        rows[-1].append(e)
        used += len(e)
    return rows


def block_causal_mask(position_ids: Any, dtype: Any = None) -> Any:
    """Additive ``[rows, 1, L, L]`` mask: token q sees token k when k <= q in the same sequence.

    A sequence starts wherever the position id does not follow the previous one. 0 where
    attention is allowed, the dtype's lowest value elsewhere (every token sees itself,
    so no softmax row is empty).
    """
    import torch

    dtype = dtype or torch.float32
    rows, length = position_ids.shape
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    sequence = starts.cumsum(-1)
    same = sequence[:, :, None] == sequence[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    mask = torch.zeros(rows, 1, length, length, dtype=dtype)
    return mask.masked_fill_(~(same & causal)[:, None], torch.finfo(dtype).min)


def collate_packed(examples: Sequence[Example], row_length: int | None = None,
                   flatten: bool = False, pad_id: int = 0) -> dict[str, Any]:
    """Packed rows: ``input_ids``, ``position_ids``, ``targets``, ``weights`` of shape [rows, L].

    Rows (``split_rows``) shorter than the longest are padded with ``pad_id`` at weight 0;
    the padding is a sequence of its own, so no real token attends to it. With
    ``flatten`` every example goes into one row without a mask (for ``flattens_rows``
    kernels); otherwise ``attention_mask`` is the rows' ``block_causal_mask``.
    """
    import torch

    rows = [list(examples)] if flatten else split_rows(examples, row_length)
    width = max(sum(len(e) for e in row) for row in rows)
    ids, pos, tgt, wts = [], [], [], []
    for row in rows:
        r_ids, r_pos, r_tgt, r_wts = [], [], [], []
        for e in row:
            r_ids += e.input_ids
            r_pos += range(len(e))
            r_tgt += e.targets
            r_wts += e.weights
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        pos.append(r_pos + list(range(pad)))
        tgt.append(r_tgt + [IGNORE] * pad)
        wts.append(r_wts + [0.0] * pad)
    batch = {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "position_ids": torch.tensor(pos, dtype=torch.long),
        "targets": torch.tensor(tgt, dtype=torch.long),
        "weights": torch.tensor(wts, dtype=torch.float32),
    }
    if not flatten:
        batch["attention_mask"] = block_causal_mask(batch["position_ids"])
    return batch


def forward_parts(examples: Sequence[Example], packing: bool, row_length: int,
                  max_tokens: int | None) -> list[list[Example]]:
    """A micro-batch cut into parts of whole rows (packed) or whole sequences (padded),
    each at most ``max_tokens`` tokens as the model sees them (padding included; a single
    row or sequence longer than that is a part of its own). ``None``: one part."""
    if max_tokens is None:
        return [list(examples)]
    units = split_rows(examples, row_length) if packing else [[e] for e in examples]
    parts: list[list[list[Example]]] = []
    widest = 0
    for unit in units:
        size = sum(len(e) for e in unit)
        if parts and (len(parts[-1]) + 1) * max(widest, size) <= max_tokens:
            parts[-1].append(unit)
            widest = max(widest, size)
        else:
            parts.append([unit])
            widest = size
    return [[e for unit in part for e in unit] for part in parts]


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


def collate(examples: Sequence[Example], packing: bool, pad_id: int, row_length: int | None = None,
            flatten: bool = False) -> dict[str, Any]:
    """Packed or padded collation."""
    if packing:
        return collate_packed(examples, row_length, flatten, pad_id)
    return collate_padded(examples, pad_id)

"""Mean answer loss per record from a causal LM, batched the way the trainer batches.

Records are tokenised by the trainer's own ``tokenise`` (chat template, loss mask,
truncation at a turn boundary), so a score is computed on exactly the tokens training
would see. The examples are then length-bucketed with the trainer's packing: by default
``best_fit_decreasing`` packs them into padding-free rows of ``batch_tokens`` tokens
(position ids restart per sequence, no attention mask, ``use_cache=False``: the
packed-sequence attention the trainer relies on); with ``packing=False`` they are sorted
by length and padded in groups of at most ``batch_tokens`` tokens. The output head runs
only on trained positions (``logits_to_keep`` with the loss mask), and the weighted
cross-entropy is summed per sequence.

``losses_one_by_one`` is the reference: one forward pass per example, no packing. Tests
check the batched losses against it; the selection benchmark measures the speed-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from sftdata.errors import UserError


@dataclass
class LoadedLM:
    """A scoring model on its device, with a tokenizer ready for ``tokenise``."""

    model: Any
    tokenizer: Any
    device: Any


def resolve_device(device: str, dtype: str = "auto") -> tuple[str, str]:
    """``(device, dtype)`` with ``auto`` resolved: cuda when a GPU is visible, else cpu;
    float32 on CPU (no bf16 units there, ~100x slower) and bfloat16 on a GPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def lm_identity(model: str | None, device: str, dtype: str, chat_template: str | None) -> dict:
    """What a score from this model depends on, computed without loading it."""
    from pathlib import Path

    from sftdata.local_model import resolve_model_path
    from sftdata.steps.scores import digest, model_identity

    template = None
    if chat_template:
        if not Path(chat_template).is_file():
            raise UserError(f"chat template not found: {chat_template}")
        template = digest(Path(chat_template).read_text(encoding="utf-8"))
    return {**model_identity(resolve_model_path(model)), "dtype": resolve_device(device, dtype)[1],
            "chat_template": template}


def load_lm(model: str | None, device: str = "auto", dtype: str = "auto",
            chat_template: str | None = None, attn_implementation: str = "sdpa") -> LoadedLM:
    """Load a local causal LM (the bundled SmolLM2 when ``model`` is None) for scoring."""
    import torch

    from sftdata.local_model import load_causal_lm
    from sftdata.trainer.data import prepare_tokenizer

    where, dtype = resolve_device(device, dtype)
    lm, tokenizer = load_causal_lm(model, dtype=getattr(torch, dtype),
                                   attn_implementation=attn_implementation)
    lm.to(where).eval()
    prepare_tokenizer(tokenizer, chat_template)
    return LoadedLM(lm, tokenizer, torch.device(where))


def answer_only_variants(record: dict) -> list[dict]:
    """The record's assistant turns without the instructions, for the "answer alone"
    side of IFD, in the order tried: after an empty system turn (so the template's
    header marks where the answer starts and a default system prompt is not scored),
    on their own, then each after an empty user turn (for templates that insist on
    user/assistant alternation)."""
    answers = [m for m in record["messages"] if m["role"] == "assistant"]
    paired = [turn for m in answers for turn in ({"role": "user", "content": ""}, m)]
    return [{**record, "messages": messages, "tools": None} for messages in
            ([{"role": "system", "content": ""}, *answers], answers, paired)]


def tokenise_all(tokenizer: Any, records: Sequence[dict], max_length: int, train_on: str,
                 variants: Callable[[dict], list[dict]] | None = None):
    """``(examples, reasons, truncated)`` per record, in order: an ``Example`` or None with
    the trainer's drop reason. With ``variants``, each record is replaced by the first
    of its variants that tokenises."""
    from sftdata.trainer.data import tokenise

    examples, reasons, truncated = [], [], []
    for record in records:
        candidates = variants(record) if variants else [record]
        result = (None, "no_candidates", False)
        for candidate in candidates:
            result = tokenise(tokenizer, candidate, max_length, train_on)
            if result[0] is not None:
                break
        examples.append(result[0])
        reasons.append(result[1])
        truncated.append(result[2])
    return examples, reasons, truncated


def _groups(lengths: list[int], batch_tokens: int, packing: bool) -> list[list[int]]:
    """Indices per forward pass: packed rows (best-fit decreasing), or length-sorted
    padded groups whose padded size stays within ``batch_tokens``."""
    from sftdata.trainer.packing import best_fit_decreasing

    capacity = max(batch_tokens, max(lengths))
    if packing:
        return best_fit_decreasing(lengths, capacity)
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups, current = [], []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and width * (len(current) + 1) > capacity:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def _forward_sums(lm: LoadedLM, batch: dict, owner: Any) -> tuple[Any, Any]:
    """(weighted CE sum, weight sum) per owner index, for one collated batch."""
    import torch
    import torch.nn.functional as F

    batch = {k: v.to(lm.device) for k, v in batch.items()}
    weights = batch["weights"]
    keep = weights > 0
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
    logits = lm.model(**inputs, use_cache=False, logits_to_keep=keep).logits
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["targets"][keep],
                         reduction="none")
    w = weights[keep]
    who = owner.to(lm.device)[keep]
    size = int(owner.max()) + 1
    sums = torch.zeros(size, device=lm.device).index_add_(0, who, ce * w)
    counts = torch.zeros(size, device=lm.device).index_add_(0, who, w)
    return sums.cpu(), counts.cpu()


def mean_losses(lm: LoadedLM, examples: Sequence[Any], batch_tokens: int = 4096,
                packing: bool = True, on_done: Callable[[int], None] | None = None) -> np.ndarray:
    """Mean loss per trained token of every example (weighted as the trainer weighs), in order."""
    import torch

    from sftdata.trainer.packing import collate_packed, collate_padded

    out = np.full(len(examples), np.nan)
    if not examples:
        return out
    lengths = [len(e) for e in examples]
    with torch.inference_mode():
        for idx in _groups(lengths, batch_tokens, packing):
            chosen = [examples[i] for i in idx]
            if packing:
                batch = collate_packed(chosen)
                owner = torch.tensor([[j for j, e in enumerate(chosen) for _ in range(len(e))]])
            else:
                batch = collate_padded(chosen, lm.tokenizer.pad_token_id)
                owner = torch.arange(len(chosen)).unsqueeze(1).expand_as(batch["input_ids"])
            sums, counts = _forward_sums(lm, batch, owner)
            for j, i in enumerate(idx):
                out[i] = float(sums[j] / counts[j]) if counts[j] > 0 else math.nan
            if on_done:
                on_done(len(idx))
    return out


def losses_one_by_one(lm: LoadedLM, examples: Sequence[Any]) -> np.ndarray:
    """The reference: one unpacked forward pass per example."""
    import torch

    from sftdata.trainer.packing import collate_padded

    out = np.full(len(examples), np.nan)
    with torch.inference_mode():
        for i, example in enumerate(examples):
            batch = collate_padded([example], lm.tokenizer.pad_token_id)
            sums, counts = _forward_sums(lm, batch, torch.zeros_like(batch["input_ids"]))
            out[i] = float(sums[0] / counts[0])
    return out

"""Held-out loss and sample generations, for the loop and for callers measuring forgetting.

``evaluate_loss`` is the weighted cross-entropy summed over trained tokens divided by
their number (per-token weights scale each token's share; with no weights below 1 it is
the mean per trained token), the same quantity the training loss reports, so
before/after numbers compare directly. It always runs packed, with each row's
block-diagonal mask given explicitly and ``use_cache=False``, under ``torch.no_grad``:
in eval mode transformers would otherwise build a cache and, with no mask given, skip
the packed-sequence detection and let packed conversations attend to each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import Example, prepare_tokenizer, render, template_messages, tokenise_records
from .modeling import load_trained, loss_sum
from .packing import collate_packed, epoch_batches, forward_parts


def load_records(path: str | os.PathLike, fmt: str | None = None) -> list[dict]:
    """Canonical record dicts from a data file in any format sftdata reads."""
    from sftdata.convert import read_canonical
    from sftdata.records import records_from_frame

    return records_from_frame(read_canonical(path, fmt=fmt).frame)


def examples_loss(model: Any, examples: Sequence[Example], row_length: int,
                  batch_rows: int = 4, device: Any = None, forward_tokens: int | None = None,
                  flatten: bool = False, **loss_options: Any) -> tuple[float, float]:
    """``(weighted loss sum, trained-token count)`` over examples, packed, without gradients
    (``forward_tokens`` and ``flatten`` as in training: see packing.py; ``loss_options``
    go to ``loss_sum``)."""
    if not examples:
        return 0.0, 0.0
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0.0
    longest = max(len(e) for e in examples)
    row_length = max(row_length, longest)
    batches = epoch_batches(examples, batch_rows, True, row_length, seed=0, epoch=0)
    parts = [part for idx in batches
             for part in forward_parts([examples[i] for i in idx], True, row_length, forward_tokens)]
    with torch.no_grad():
        for part in parts:
            batch = collate_packed(part, row_length, flatten)
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            total += float(loss_sum(model, batch, **loss_options))
            weight += float((batch["weights"] > 0).sum())
    model.train(was_training)
    return total, weight


def evaluate_loss(model: Any, records: Sequence[dict] | str | os.PathLike,
                  tokenizer: Any = None, max_length: int = 2048, train_on: str = "assistant",
                  chat_template: str | None = None, batch_rows: int = 4, **mask_options: Any) -> float:
    """Mean loss per trained token of ``model`` on canonical ``records`` (or a data file).

    ``model`` is a loaded model (then pass its ``tokenizer``), a folder holding a full
    model or a LoRA adapter (loaded on its base), or ``None`` for the bundled model.
    Records with no trained tokens after truncation are skipped. Returns ``nan`` when
    nothing is left to score.
    """
    if model is None or isinstance(model, (str, Path)):
        model, loaded_tok = load_trained(model)
        tokenizer = tokenizer or loaded_tok
    if tokenizer is None:
        raise ValueError("pass the tokenizer together with a loaded model")
    if isinstance(records, (str, Path)):
        records = load_records(records)
    prepare_tokenizer(tokenizer, chat_template)
    examples = tokenise_records(tokenizer, records, max_length, train_on, **mask_options).examples
    device = next(model.parameters()).device
    total, weight = examples_loss(model, examples, max_length, batch_rows, device)
    return total / weight if weight else float("nan")


def prompt_messages(record: dict) -> list[dict] | None:
    """The messages before the record's last assistant turn (None when there is none)."""
    messages = record["messages"]
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    return messages[:last] if last else None


def generate_samples(model: Any, tokenizer: Any, prompts: Sequence[str | list[dict]],
                     max_new_tokens: int = 64) -> list[tuple[str, str]]:
    """Greedy completions: ``[(prompt text, generated text)]``; a prompt is a string or messages."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for prompt in prompts:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = render(tokenizer, template_messages(messages), add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id)
        reply = tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip()
        shown = prompt if isinstance(prompt, str) else messages[-1]["content"]
        out.append((shown, reply))
    model.train(was_training)
    return out

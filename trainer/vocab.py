"""New special tokens: added to the tokenizer, rows added to the embeddings, trained.

Putting ChatML onto a base model (``chat_template: chatml`` on a tokenizer that has no
``<|im_start|>``) would otherwise split every turn marker into several ordinary tokens,
and the model would have to learn to stop on a sequence of them. So the markers become
single special tokens, the embedding matrix grows (the new rows start at the mean of the
old ones: a neutral start, where random rows would make the first steps' outputs noise),
and they train: the whole matrix in a full
fine-tune, only the new rows with LoRA (peft's ``trainable_token_indices``).
"""

from __future__ import annotations

from typing import Any, Iterable

CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def add_special_tokens(tokenizer: Any, wanted: Iterable[str]) -> list[int]:
    """Add ``wanted`` (and ChatML's markers when the chat template writes them) as special
    tokens where the tokenizer lacks them; the ids of the tokens added, in order."""
    wanted = list(dict.fromkeys(wanted))
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and CHATML_TOKENS[0] in template:
        wanted += [t for t in CHATML_TOKENS if t not in wanted]
    vocab = tokenizer.get_vocab()
    new = [t for t in wanted if t not in vocab]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    return [tokenizer.convert_tokens_to_ids(t) for t in new]


def fit_embeddings(model: Any, tokenizer: Any) -> None:
    """Grow the model's embeddings (and tied head) to the tokenizer's size when it has more
    tokens; new rows (of the embeddings and an untied head) start at the mean of the old ones.
    Resizing is deterministic: loading an adapter trained with added tokens repeats it."""
    import torch

    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for layer in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
                      if m is not None}.values():
            weight = layer.weight
            weight[rows:] = weight[:rows].mean(0, keepdim=True).to(weight.dtype)


def stop_on_end_of_turn(model: Any, tokenizer: Any) -> None:
    """Make generation stop at ``<|im_end|>`` too, when the tokenizer has it as a token."""
    end = tokenizer.get_vocab().get(CHATML_TOKENS[1])
    config = getattr(model, "generation_config", None)
    if end is None or config is None:
        return
    eos = config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if end not in eos:
        config.eos_token_id = eos + [end]

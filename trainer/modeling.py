"""Models: load for a method (lora / full / freeze), the masked loss, save, load, merge.

The loss is computed here rather than by the model so that (1) the output head only
runs on trained positions (``logits_to_keep`` with a boolean mask: on a 135M model the
vocabulary projection is a fifth of the compute, and prompts are untrained), (2)
per-token weights are honoured, and (3) gradient accumulation can normalise by the
trained tokens of the whole optimizer step instead of averaging per micro-batch means.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sftdata.errors import UserError
from sftdata.io import atomic_dir
from sftdata.local_model import load_causal_lm, load_tokenizer
from .model_card import write_card

ADAPTER_CONFIG = "adapter_config.json"


def loss_sum(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over trained targets of ``weight * cross_entropy`` (fp32), for one micro-batch.

    Packed batches carry ``position_ids`` and no ``attention_mask``; ``use_cache=False``
    is required there, or transformers skips the packed-sequence mask.
    """
    weights = batch["weights"]
    keep = weights > 0
    inputs = {"input_ids": batch["input_ids"]}
    for key in ("position_ids", "attention_mask"):
        if key in batch:
            inputs[key] = batch[key]
    out = model(**inputs, use_cache=False, logits_to_keep=keep)
    logits = out.logits.float().reshape(-1, out.logits.shape[-1])
    ce = F.cross_entropy(logits, batch["targets"][keep], reduction="none")
    return (ce * weights[keep]).sum()


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The transformer block list (the longest ModuleList in the model)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise UserError("cannot find the model's transformer layers for --method freeze")
    return max(lists, key=len)


def prepare_model(cfg: Any, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Load the base model and tokenizer and make the parameters of ``cfg.method`` trainable."""
    model, tokenizer = load_causal_lm(cfg.model, dtype=dtype, attn_implementation=cfg.attn_implementation)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (lora / freeze) as is.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        target = cfg.lora_target if cfg.lora_target == "all-linear" else list(cfg.lora_target)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=target, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    elif cfg.method == "freeze":
        for p in model.parameters():
            p.requires_grad_(False)
        layers = decoder_layers(model)
        for layer in list(layers)[-cfg.freeze_trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        norm = getattr(getattr(model, "model", model), "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
    return model, tokenizer


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The trainable tensors by name (what a checkpoint must restore)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    """Copy checkpointed trainable tensors back into the model (names must match)."""
    params = dict(model.named_parameters())
    unknown = [n for n in state if n not in params]
    if unknown:
        raise UserError(f"checkpoint does not match the model (e.g. {unknown[0]})")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save_model(model: Any, tokenizer: Any, out: Path, extra: dict[str, str] | None = None) -> None:
    """Save the adapter (lora) or the whole model, with the tokenizer, into ``out``.

    Files are written to a temp folder and moved in, so a kill never leaves half a model;
    existing unrelated files in ``out`` (metrics, checkpoints) are kept.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".final.", dir=out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        write_card(tmp, title=out.name, run_dir=out)
        for item in Path(tmp).iterdir():
            os.replace(item, out / item.name)


def is_adapter(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a peft adapter rather than a full model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | os.PathLike) -> str:
    """The base model folder an adapter was trained on."""
    config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise UserError(f"{path}: base model {base!r} of this adapter is not a local folder")
    return base


def load_trained(path: str | os.PathLike | None, dtype: Any = torch.float32,
                 base: str | None = None) -> tuple[Any, Any]:
    """Load a trained output: an adapter on its base model, or a full model folder."""
    if path is not None and is_adapter(path):
        from peft import PeftModel

        model, _ = load_causal_lm(base or adapter_base(path), dtype=dtype)
        model = PeftModel.from_pretrained(model, str(path))
        return model, load_tokenizer(path)
    return load_causal_lm(None if path is None else str(path), dtype=dtype)


def merge_adapter(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  base: str | None = None) -> Path:
    """Merge a LoRA adapter into its base model and save a standalone model folder."""
    if not is_adapter(adapter_dir):
        raise UserError(f"{adapter_dir}: no {ADAPTER_CONFIG} here (not a LoRA adapter)")
    model, tokenizer = load_trained(adapter_dir, base=base)
    merged = model.merge_and_unload()
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, title=out.name, merged_from=adapter_dir, base=base)
    return out

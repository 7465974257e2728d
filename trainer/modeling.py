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
from sftdata.local_model import load_causal_lm, load_tokenizer, make_portable, resolve_model_path

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
    # The positions trained in any row, as 1-D indices: transformers 4.5x and 5.x both take
    # that for logits_to_keep (5.x also takes a boolean mask, 4.5x raises on one).
    positions = keep.any(dim=0).nonzero().squeeze(-1)
    out = model(**inputs, use_cache=False, logits_to_keep=positions)
    logits = out.logits[keep[:, positions]].float()
    ce = F.cross_entropy(logits, batch["targets"][keep], reduction="none")
    return (ce * weights[keep]).sum()


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The transformer block list (the longest ModuleList in the model)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise UserError("cannot find the model's transformer layers for --method freeze")
    return max(lists, key=len)


def final_norm(model: Any) -> torch.nn.Module | None:
    """The norm after the last transformer block (``model.norm``, GPT-2's ``transformer.ln_f``...):
    the last module with "Norm" in its class name that is registered after the block list
    and is not inside it."""
    layers = decoder_layers(model)
    seen_layers, found = False, None
    prefix = None
    for name, module in model.named_modules():
        if module is layers:
            seen_layers, prefix = True, name + "."
            continue
        if seen_layers and not name.startswith(prefix) and "norm" in type(module).__name__.lower():
            found = module
    return found


def _adaptable_names(model: Any) -> set[str]:
    """Names (full and last part) of the modules LoRA can adapt: linear and GPT-2 Conv1D layers."""
    names: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            names.update({name, name.rsplit(".", 1)[-1]})
    return names


def _check_lora_target(model: Any, target: list[str]) -> None:
    known = _adaptable_names(model)
    unknown = [t for t in target if t not in known]
    if unknown:
        parts = sorted({n.rsplit(".", 1)[-1] for n in known})
        raise UserError(f"lora_target: no linear layer named {', '.join(map(repr, unknown))} in this model "
                        f"(its linear layers: {', '.join(parts)}; or use all-linear)")


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
        if target != "all-linear":
            _check_lora_target(model, target)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=target, task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:  # anything peft still refuses, in one line
            raise UserError(f"lora: {str(exc).splitlines()[0]}") from None
    elif cfg.method == "freeze":
        layers = decoder_layers(model)
        if cfg.freeze_trainable_layers > len(layers):
            raise UserError(f"freeze_trainable_layers={cfg.freeze_trainable_layers}, but the model has "
                            f"{len(layers)} layers (use --method full to train them all)")
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[-cfg.freeze_trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        norm = final_norm(model)
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


def saved_dtype(base: str | os.PathLike | None, wanted: str = "auto") -> torch.dtype:
    """The dtype a full model is saved in: ``wanted``, or the base model's own (its config.json)."""
    if wanted != "auto":
        return getattr(torch, wanted)
    config = Path(resolve_model_path(base)) / "config.json"
    values = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    name = values.get("dtype") or values.get("torch_dtype") or "float32"
    return getattr(torch, name) if isinstance(getattr(torch, str(name), None), torch.dtype) else torch.float32


def _save_pretrained(model: Any, folder: Path, dtype: torch.dtype | None) -> None:
    """``save_pretrained``, with the weights cast to ``dtype`` (the model itself is not changed)."""
    if dtype is None or is_peft(model):
        model.save_pretrained(folder, safe_serialization=True)
        return
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    config = folder / "config.json"
    values = json.loads(config.read_text(encoding="utf-8"))
    values["dtype"] = str(dtype).removeprefix("torch.")
    config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_model(model: Any, tokenizer: Any, out: Path, extra: dict[str, str] | None = None,
               dtype: torch.dtype | str | None = None, base: str | None = None) -> None:
    """Save the adapter (lora) or the whole model, with the tokenizer, into ``out``.

    A whole model is saved in ``dtype`` ("auto": the dtype of ``base``, its base model), so
    a bf16 base gives a bf16 model, not fp32 at twice the size. The folder loads under
    transformers 4.5x and 5.x alike (local_model.make_portable). Files are written to a temp
    folder and moved in, so a kill never leaves half a model; existing unrelated files in
    ``out`` (metrics, checkpoints) are kept.
    """
    if isinstance(dtype, str):
        dtype = saved_dtype(base, dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".final.", dir=out) as tmp:
        _save_pretrained(model, Path(tmp), dtype)
        tokenizer.save_pretrained(tmp)
        make_portable(tmp)
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
                  base: str | None = None, dtype: str = "auto", device: str = "auto") -> Path:
    """Merge a LoRA adapter into its base model and save a standalone model folder.

    The merge runs in float32 (on the GPU when there is one and ``device`` is auto) and the
    result is saved in ``dtype``: auto = the base model's dtype.
    """
    if not is_adapter(adapter_dir):
        raise UserError(f"{adapter_dir}: no {ADAPTER_CONFIG} here (not a LoRA adapter)")
    base_path = base or adapter_base(adapter_dir)
    model, tokenizer = load_trained(adapter_dir, base=base)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    merged = model.to(device).merge_and_unload()
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        _save_pretrained(merged, Path(tmp), saved_dtype(base_path, dtype))
        tokenizer.save_pretrained(tmp)
        make_portable(tmp)
        write_card(tmp, title=out.name, merged_from=adapter_dir, base=base)
    return out

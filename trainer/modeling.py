"""Models: load for a method (lora / qlora / full / freeze), save, load, merge.

The masked loss lives in loss.py (``loss_sum`` is re-exported here for callers).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sftdata.errors import UserError
from sftdata.io import atomic_dir
from sftdata.local_model import load_causal_lm, load_tokenizer, make_portable, resolve_model_path

from .loss import loss_sum  # noqa: F401  (re-exported)
from .model_card import write_card

ADAPTER_CONFIG = "adapter_config.json"


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


def _quantization(compute: torch.dtype) -> Any:
    """bitsandbytes' 4-bit NF4 config (double quantisation) for method qlora, or a one-line error."""
    if not torch.cuda.is_available():
        raise UserError("method qlora needs a CUDA GPU (bitsandbytes 4-bit weights); use --method lora here")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("method qlora needs the bitsandbytes package: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if compute == torch.float32 else compute
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=compute)


def _check_modules_to_save(model: Any, names: list[str]) -> None:
    known = {part for name, _ in model.named_modules() if name for part in (name, name.rsplit(".", 1)[-1])}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"modules_to_save: no module named {', '.join(map(repr, unknown))} in this model "
                        f"(e.g. lm_head, embed_tokens, norm)")


LORA_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa_niter_4", "olora": "olora"}


def _lora_config(cfg: Any, model: Any, new_token_ids: list[int]) -> Any:
    from peft import LoraConfig

    target = cfg.lora_target if cfg.lora_target == "all-linear" else list(cfg.lora_target)
    if target != "all-linear":
        _check_lora_target(model, target)
    _check_modules_to_save(model, list(cfg.modules_to_save))
    extra: dict[str, Any] = {}
    if new_token_ids:  # only the new rows of the embeddings train (and of a tied head)
        name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
        extra["trainable_token_indices"] = {name.rsplit(".", 1)[-1]: list(new_token_ids)}
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target, task_type="CAUSAL_LM", use_dora=cfg.lora_dora,
                      use_rslora=cfg.lora_rslora, init_lora_weights=LORA_INIT[cfg.lora_init],
                      modules_to_save=list(cfg.modules_to_save) or None, **extra)


def prepare_model(cfg: Any, precision: Any = None, tokenizer: Any = None,
                  new_token_ids: list[int] | None = None, device: Any = None) -> tuple[Any, Any]:
    """Load the base model and tokenizer and make the parameters of ``cfg.method`` trainable.

    ``precision`` (precision.Precision): the load dtype of the weights and the dtype of the
    trained ones (default fp32). ``tokenizer``: one with tokens added (vocab.py), whose ids
    ``new_token_ids`` get embedding rows that train. ``device``: where a qlora base is loaded.
    """
    from sftdata.progress import hide_library_bars

    from .precision import Precision, cast_trainable
    from .vocab import fit_embeddings, stop_on_end_of_turn

    hide_library_bars()  # the trainer's own bar is the one shown
    precision = precision or Precision(torch.float32, "no", torch.float32)
    kwargs: dict[str, Any] = {}
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.method == "qlora":
        kwargs["quantization_config"] = _quantization(precision.load)
        kwargs["device_map"] = {"": device if device is not None else torch.cuda.current_device()}
    model, loaded = load_causal_lm(cfg.model, dtype=precision.load, **kwargs)
    tokenizer = tokenizer or loaded
    new_token_ids = list(new_token_ids or [])
    fit_embeddings(model, tokenizer)
    stop_on_end_of_turn(model, tokenizer)
    model.config.use_cache = False
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Norms (and embeddings) in fp32, inputs that require grad for recomputation.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (lora / freeze) as is.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.method in ("lora", "qlora"):
        from peft import get_peft_model

        try:
            model = get_peft_model(model, _lora_config(cfg, model, new_token_ids))
        except ValueError as exc:  # anything peft still refuses, in one line
            raise UserError(f"lora: {str(exc).splitlines()[0]}") from None
    elif cfg.method == "freeze":
        layers = decoder_layers(model)
        if cfg.freeze_trainable_layers > len(layers):
            raise UserError(f"freeze_trainable_layers={cfg.freeze_trainable_layers}, but the model has "
                            f"{len(layers)} layers (use --method full to train them all)")
        for p in model.parameters():
            p.requires_grad_(False)
        trained = [*list(layers)[-cfg.freeze_trainable_layers:], final_norm(model)]
        if new_token_ids:  # new tokens need their rows trained: the embeddings (and a tied head)
            trained += [model.get_input_embeddings(), model.get_output_embeddings()]
        for module in trained:
            for p in (module.parameters() if module is not None else ()):
                p.requires_grad_(True)
    # Trained weights in fp32 (or the load dtype for pure bf16); LoRA adapters are fp32 already.
    cast_trainable(model, precision.trainable if cfg.method in ("full", "freeze") else torch.float32)
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


def _save_pretrained(model: Any, folder: Path, dtype: torch.dtype | None, state_dict: dict | None = None,
                     initial_adapter: Path | None = None) -> None:
    """``save_pretrained``, with the weights cast to ``dtype`` (the model itself is not changed).

    ``state_dict``: the full weights when the model is sharded (FSDP gathers them);
    ``initial_adapter``: a PiSSA/OLoRA adapter as initialised, to save an adapter of the
    original base instead (see loop._save_initial_adapter)."""
    if is_peft(model):
        extra = {"state_dict": state_dict} if state_dict is not None else {}
        if initial_adapter is not None:
            extra["path_initial_model_for_weight_conversion"] = str(initial_adapter)
        model.save_pretrained(folder, safe_serialization=True, **extra)
        return
    if dtype is None and state_dict is None:
        model.save_pretrained(folder, safe_serialization=True)
        return
    state = state_dict if state_dict is not None else model.state_dict()
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    config = folder / "config.json"
    values = json.loads(config.read_text(encoding="utf-8"))
    if dtype is not None:
        values["dtype"] = str(dtype).removeprefix("torch.")
    config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_model(model: Any, tokenizer: Any, out: Path, extra: dict[str, str] | None = None,
               dtype: torch.dtype | str | None = None, base: str | None = None,
               state_dict: dict | None = None, initial_adapter: Path | None = None) -> None:
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
        _save_pretrained(model, Path(tmp), dtype, state_dict, initial_adapter)
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

        from .vocab import fit_embeddings, stop_on_end_of_turn

        model, _ = load_causal_lm(base or adapter_base(path), dtype=dtype)
        tokenizer = load_tokenizer(path)
        fit_embeddings(model, tokenizer)  # an adapter trained with added tokens
        stop_on_end_of_turn(model, tokenizer)
        model = PeftModel.from_pretrained(model, str(path))
        return model, tokenizer
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

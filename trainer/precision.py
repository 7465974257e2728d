"""Precision and attention kernel for the machine: what the weights are loaded in, what
the forward pass computes in, and which attention implementation runs it.

``dtype: auto`` means fp32 on a CPU (no bf16 matrix units: bf16 there is slower, not
faster), bf16 on a GPU that has it (Ampere and newer), fp16 with dynamic loss scaling on
one that does not (T4, V100). Frozen weights are *loaded* in that dtype, so a LoRA run on
a 7B model holds 2 bytes per base parameter, not 4. Weights that train stay fp32 (their
optimizer updates are often below bf16's resolution, and fp16 loss scaling needs fp32
gradients): LoRA adapters always, full/freeze parameters unless ``trainable_dtype:
model`` asks for pure bf16 (half the memory of a full fine-tune, at that cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIXED = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Precision:
    """``load``: dtype of the loaded weights; ``mixed``: accelerate's mixed_precision
    (autocast, and a loss scaler for fp16); ``trainable``: dtype of trained parameters."""

    load: torch.dtype
    mixed: str
    trainable: torch.dtype


def resolve_precision(dtype: str, on_cuda: bool, bf16_supported: bool,
                      trainable_dtype: str = "float32") -> Precision:
    """The precision of a run asking for ``dtype`` (auto | float32 | bfloat16 | float16).

    >>> resolve_precision("auto", on_cuda=False, bf16_supported=False).load
    torch.float32
    >>> resolve_precision("auto", on_cuda=True, bf16_supported=True).mixed
    'bf16'
    >>> p = resolve_precision("auto", on_cuda=True, bf16_supported=False)
    >>> (p.load, p.mixed, p.trainable)
    (torch.float16, 'fp16', torch.float32)
    """
    if dtype == "auto":
        load = torch.float32 if not on_cuda else torch.bfloat16 if bf16_supported else torch.float16
    else:
        load = DTYPES[dtype]
    # fp16 gradients cannot be unscaled (GradScaler refuses them): fp16 runs train fp32 weights.
    trainable = load if trainable_dtype == "model" and load != torch.float16 else torch.float32
    return Precision(load=load, mixed=MIXED[load], trainable=trainable)


def machine_precision(dtype: str, trainable_dtype: str = "float32") -> Precision:
    """``resolve_precision`` for this process's device."""
    on_cuda = torch.cuda.is_available()
    return resolve_precision(dtype, on_cuda, on_cuda and torch.cuda.is_bf16_supported(), trainable_dtype)


def enable_tf32() -> None:
    """fp32 matrix products on tensor cores (TF32) on GPUs that have them: what is still
    fp32 in a mixed-precision step (the loss head's upcast, fp32 adapters) runs ~8x faster."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def cast_trainable(model: Any, dtype: torch.dtype) -> None:
    """Cast the parameters that train to ``dtype`` (the frozen ones keep the load dtype)."""
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def installed_flash_attention() -> str | None:
    """The best flash-attention implementation transformers can use here, or None:
    FA3 (``flash_attn_interface``, Hopper), then FA2 (``flash_attn``). Only locally
    installed kernels count: nothing is fetched from a hub."""
    try:
        from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available
    except ImportError:  # pragma: no cover - transformers older than the supported range
        return None
    if is_flash_attn_3_available():
        return "flash_attention_3"
    if is_flash_attn_2_available():
        return "flash_attention_2"
    return None


def pick_attention(requested: str, on_cuda: bool, flash: str | None = None) -> str:
    """The attention implementation to load: ``requested`` unless it is ``auto``; then a
    flash-attention kernel on a GPU that has one installed (``flash``), else sdpa.

    >>> pick_attention("auto", on_cuda=False, flash="flash_attention_2")
    'sdpa'
    >>> pick_attention("auto", on_cuda=True, flash="flash_attention_2")
    'flash_attention_2'
    >>> pick_attention("eager", on_cuda=True, flash="flash_attention_2")
    'eager'
    """
    if requested != "auto":
        return requested
    return flash if on_cuda and flash else "sdpa"

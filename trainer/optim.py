"""The optimizer: AdamW with no weight decay on biases and norms, and LoRA+ learning rates.

LoRA+ (Hayou et al., 2024) trains an adapter's B matrix with a learning rate
``loraplus_lr_ratio`` times that of A: with equal rates the B side learns too slowly
for the product to move at its best rate. The groups keep their ratio through warmup and
decay, because the scheduler scales each group's own initial rate.
"""

from __future__ import annotations

from typing import Any

import torch


def _is_lora_b(name: str) -> bool:
    return "lora_B" in name or "lora_embedding_B" in name


def param_groups(model: Any, lr: float, weight_decay: float, loraplus_ratio: float | None = None) -> list[dict]:
    """AdamW parameter groups (empty ones dropped); the first has the base learning rate."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for fast in (False, True):
        chosen = [(n, p) for n, p in named if (bool(loraplus_ratio) and _is_lora_b(n)) == fast]
        rate = lr * (loraplus_ratio or 1.0) if fast else lr
        groups += [{"params": [p for _, p in chosen if p.ndim >= 2], "weight_decay": weight_decay, "lr": rate},
                   {"params": [p for _, p in chosen if p.ndim < 2], "weight_decay": 0.0, "lr": rate}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: Any, cfg: Any) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, as ``cfg`` asks (lr, weight decay, betas, LoRA+)."""
    ratio = cfg.loraplus_lr_ratio if cfg.method in ("lora", "qlora") else None
    fused = {"fused": True} if all(p.is_cuda for p in model.parameters() if p.requires_grad) \
        and torch.cuda.is_available() else {}
    return torch.optim.AdamW(param_groups(model, cfg.lr, cfg.weight_decay, ratio), lr=cfg.lr,
                             betas=cfg.adam_betas, **fused)

"""The built-in SFT trainer (installed as ``sftdata.trainer``): LoRA (and QLoRA, DoRA,
rsLoRA, PiSSA/OLoRA, LoRA+), full and freeze tuning on canonical records, with loss masks
from the chat template, padding-free packing fitted to the attention kernel, a fused
cross-entropy, bf16/fp16 on GPUs, DDP/FSDP2 through accelerate (launch.py), resumable
checkpoints and LoRA merging.

    from sftdata.trainer import TrainConfig, train, evaluate_loss, merge_adapter
    result = train(TrainConfig(data="clean.jsonl", output_dir="runs/a", max_steps=50))
    evaluate_loss(result.output_dir, held_out_records)

Imports of torch happen when a function that needs it is first used, so
``from sftdata.trainer import TrainConfig`` is cheap.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig, build_config, load_config

__all__ = ["TrainConfig", "TrainResult", "build_config", "load_config", "train",
           "evaluate_loss", "merge_adapter", "load_trained", "generate_samples"]

_LAZY = {
    "train": "loop", "TrainResult": "loop", "evaluate_loss": "evaluate",
    "generate_samples": "evaluate", "merge_adapter": "modeling", "load_trained": "modeling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)

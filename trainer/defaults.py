"""Training options that depend on the machine, filled in when a config leaves them unset.

On a GPU the config's own defaults stand (rows of ``max_length``, a micro-batch in one
forward pass, no recomputation). On a CPU, memory is what runs out first on a laptop:
the bundled 135M model in fp32 with torch and transformers loaded already holds ~0.95
GiB, and without recomputation a training step keeps ~1.4 MB of activations per token
(30 layers) plus ~0.7 MB per trained token for the 49k-word output head. Measured on 24
real-world Alpaca records (70% of tokens trained, one forward pass of 512 tokens):

    peak RSS            glibc default    freed memory returned at once
    activations kept    2,952 MiB        1,943 MiB
    recomputed          2,055 MiB        1,344 MiB

So on CPU: rows of ``CPU_PACK_LENGTH`` tokens (a longer conversation gets a row of its
own), at most ``CPU_FORWARD_TOKENS`` tokens per forward pass (a micro-batch of more rows
runs in parts, with the same gradient), activations recomputed in the backward pass
(about a third more compute, a sixth of the memory: TRL and LLaMA-Factory recompute by
default too), glibc told to return freed blocks at once (``sftdata.machine``), and one
torch thread per core unless other work already fills the machine. Every value set in
the config wins; the filled-in config is what ``train_config.yaml`` records.
"""

from __future__ import annotations

from .config import TrainConfig

CPU_PACK_LENGTH = 512
CPU_FORWARD_TOKENS = 512


def for_machine(cfg: TrainConfig, on_cpu: bool) -> TrainConfig:
    """``cfg`` with the machine-dependent options it left unset filled in."""
    from sftdata.machine import torch_threads

    if not on_cpu:
        return cfg.model_copy(update={"gradient_checkpointing": bool(cfg.gradient_checkpointing)})
    pack_length = cfg.pack_length or min(cfg.max_length, CPU_PACK_LENGTH)
    return cfg.model_copy(update={
        "pack_length": pack_length,
        "forward_tokens": cfg.forward_tokens or max(CPU_FORWARD_TOKENS, pack_length),
        "gradient_checkpointing": True if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing,
        "threads": cfg.threads or torch_threads(),
    })

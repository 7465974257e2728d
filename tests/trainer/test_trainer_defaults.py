"""Options chosen for the machine when a config leaves them unset (trainer/defaults.py)."""

from __future__ import annotations

from sftdata.trainer.config import TrainConfig
from sftdata.trainer.defaults import CPU_FORWARD_TOKENS, CPU_PACK_LENGTH, for_machine


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="d.jsonl", output_dir="out", **kw)


def test_cpu_gets_short_rows_bounded_forward_passes_and_recomputation():
    cfg = for_machine(_cfg(), on_cpu=True)
    assert cfg.pack_length == CPU_PACK_LENGTH and cfg.forward_tokens == CPU_FORWARD_TOKENS
    assert cfg.gradient_checkpointing is True and cfg.threads >= 1
    assert cfg.batch_size == 8 and cfg.max_length == 2048  # what a step holds is the same everywhere
    short = for_machine(_cfg(max_length=128), on_cpu=True)
    assert short.pack_length == 128 and short.forward_tokens == CPU_FORWARD_TOKENS


def test_what_the_config_sets_wins():
    cfg = for_machine(_cfg(pack_length=2048, forward_tokens=4096, gradient_checkpointing=False, threads=3),
                      on_cpu=True)
    assert (cfg.pack_length, cfg.forward_tokens, cfg.gradient_checkpointing, cfg.threads) == (2048, 4096, False, 3)
    # One row always fits one forward pass.
    assert for_machine(_cfg(pack_length=2048), on_cpu=True).forward_tokens == 2048


def test_gpu_keeps_the_config_defaults():
    cfg = for_machine(_cfg(), on_cpu=False)
    assert cfg.pack_length is None and cfg.row_length == 2048
    assert cfg.forward_tokens is None and cfg.gradient_checkpointing is False and cfg.threads is None

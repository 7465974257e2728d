"""Tiny random models of each exportable architecture (with the real SmolLM2 tokenizer),
and running the installed ``sftdata`` command, for the GGUF tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512)
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def tiny_config(kind: str, tokenizer):
    """A small config of ``kind``: llama, llama3rope, mistral, qwen2, qwen3."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if kind == "llama":
        return LlamaConfig(**CONFIG, **ids, tie_word_embeddings=True)
    if kind == "llama3rope":
        return LlamaConfig(**CONFIG, **ids, tie_word_embeddings=False, rope_parameters=dict(LLAMA3_ROPE))
    if kind == "mistral":
        return MistralConfig(**CONFIG, **ids, tie_word_embeddings=False)
    if kind == "qwen2":
        return Qwen2Config(**CONFIG, **ids, tie_word_embeddings=True)
    if kind == "qwen3":
        return Qwen3Config(**CONFIG, **ids, head_dim=32, tie_word_embeddings=True)
    raise ValueError(kind)


def make_model_dir(folder: Path, kind: str, tokenizer, scale: float = 0.2) -> Path:
    """Save a random model of ``kind`` with weights large enough that layout errors show."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(kind, tokenizer))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, scale)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_sftdata(*args: str, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """The installed console script (the same entry point a user runs)."""
    exe = Path(sys.executable).with_name("sftdata")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)

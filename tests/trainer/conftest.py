"""Trainer fixtures: a tiny randomly initialised Llama (with the real SmolLM2 tokenizer)
saved to a temp folder, and small chat data files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TOPICS = ["the sea", "a red fox", "bread", "the moon", "trains", "winter", "a violin", "maps"]


def make_records(n: int, seed: int = 0, multi_turn: bool = True) -> list[dict]:
    """Small OpenAI-style chat records with varied lengths and a learnable pattern."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        reps = rng.randint(1, 6)
        messages = [{"role": "system", "content": "Answer briefly."}] if i % 3 == 0 else []
        messages += [{"role": "user", "content": f"Tell me about {topic}."},
                     {"role": "assistant", "content": f"{topic.capitalize()} is nice. " * reps}]
        if multi_turn and i % 4 == 1:
            messages += [{"role": "user", "content": "And more?"},
                         {"role": "assistant", "content": f"More about {topic}. " * rng.randint(1, 3)}]
        rows.append({"messages": messages})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The real SmolLM2 tokenizer (converted once into the user's sftdata cache)."""
    from sftdata.local_model import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer) -> Path:
    """A 2-layer Llama with random weights and the SmolLM2 tokenizer, as a model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id,
                         pad_token_id=smol_tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def chat_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", make_records(40))

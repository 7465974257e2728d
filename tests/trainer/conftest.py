"""Trainer fixtures: a tiny randomly initialised Llama (with the real SmolLM2 tokenizer)
saved to a temp folder, and small chat data files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# Also imported as tests.trainer.conftest by other test folders (for the fixtures), where
# this folder is not on sys.path yet.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_helpers import make_records, write_jsonl  # noqa: E402


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

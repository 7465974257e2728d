"""The emit tests reuse the trainer's tiny random Llama (with the real SmolLM2 tokenizer)."""

from tests.trainer.conftest import smol_tokenizer, tiny_model_dir  # noqa: F401 - fixtures

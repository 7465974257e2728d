"""The safety suite reuses the trainer's fixtures (real SmolLM2 tokenizer, tiny model)."""

from tests.trainer.conftest import smol_tokenizer, tiny_model_dir  # noqa: F401 - fixtures

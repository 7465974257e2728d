"""Fixtures for the model-based steps: the trainer's tiny random Llama (with the real
SmolLM2 tokenizer), a score cache in a temp folder for every test, small frames."""

from __future__ import annotations

import pytest

from tests.trainer.conftest import smol_tokenizer, tiny_model_dir  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def score_cache(tmp_path, monkeypatch):
    """Every test gets its own, empty score cache (never the user's)."""
    folder = tmp_path / "scores"
    monkeypatch.setenv("SFTDATA_SCORES", str(folder))
    return folder

"""The bundled model converts once to a safetensors folder that matches the GGUF."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
from sftdata import local_model  # noqa: E402
from sftdata.errors import UserError  # noqa: E402


def test_missing_model_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="model not found"):
        local_model.resolve_model_path(tmp_path / "nope")


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SFTDATA_CACHE", str(tmp_path))
    assert local_model.cache_dir() == tmp_path


@pytest.mark.slow
def test_bundled_conversion_matches_gguf(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("SFTDATA_CACHE", str(tmp_path))
    folder = local_model.bundled_model_dir()
    assert (folder / "model.safetensors").is_file()
    # No temp folders are left beside the result.
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    model, tok = local_model.load_causal_lm(str(folder))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gguf = local_model.bundled_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        a = model(ids).logits
        b = ref(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    # Second call reuses the folder (no reconversion: same mtime).
    mtime = os.path.getmtime(folder / "model.safetensors")
    assert local_model.bundled_model_dir() == folder
    assert os.path.getmtime(folder / "model.safetensors") == mtime

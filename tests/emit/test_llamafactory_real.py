"""LLaMA-Factory itself loads every real-world file converted by ``sftdata convert`` and
registered by ``sftdata emit``, with the same token ids and labels as the original file.

LLaMA-Factory pins its own torch and transformers, so it lives in a separate venv; this
test runs when SFTDATA_LLAMAFACTORY_PYTHON names that venv's python, e.g.

    python3 -m venv /tmp/lf-venv && /tmp/lf-venv/bin/pip install torch==2.13.0 llamafactory==0.9.5
    SFTDATA_LLAMAFACTORY_PYTHON=/tmp/lf-venv/bin/python pytest -m integration tests/emit
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
# The entries LLaMA-Factory's own data/dataset_info.json gives the originals (SFT stage).
ORIGINALS = {
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "identity": {"file_name": "identity.json"},
    "glaive_toolcall_en_demo": {"file_name": "glaive_toolcall_en_demo.json", "formatting": "sharegpt",
                                "columns": {"messages": "conversations", "tools": "tools"}},
}


def _sftdata(*args, cwd) -> None:
    exe = Path(sys.executable).with_name("sftdata")
    result = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr


def test_llamafactory_loads_the_outputs_as_the_originals(tmp_path, realworld):
    python = os.environ.get("SFTDATA_LLAMAFACTORY_PYTHON")
    if not python:
        pytest.skip("set SFTDATA_LLAMAFACTORY_PYTHON to a python with llamafactory installed")
    from sftdata.local_model import bundled_model_dir

    for stem in ORIGINALS:
        source = next(realworld.glob(f"{stem}.json*"))
        (tmp_path / source.name).write_bytes(source.read_bytes())
        for fmt in ("alpaca", "sharegpt", "openai"):
            out = f"{stem}.{fmt}.jsonl"
            _sftdata("convert", source, "-o", out, "--to", fmt, cwd=tmp_path)
            _sftdata("emit", out, "--for", "llamafactory", cwd=tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    info.update({f"orig.{k}": v for k, v in ORIGINALS.items()})
    (tmp_path / "dataset_info.json").write_text(json.dumps(info, indent=2))
    run = subprocess.run([python, str(HERE / "llamafactory_load.py"), str(tmp_path), str(bundled_model_dir())],
                         capture_output=True, text=True, timeout=1800)
    results = {r["name"]: r for r in (json.loads(line[7:]) for line in run.stdout.splitlines()
                                      if line.startswith("RESULT "))}
    assert len(results) == len(info), run.stderr[-3000:]
    for stem in ORIGINALS:
        original = results[f"orig.{stem}"]
        assert original["ok"], original
        for fmt in ("alpaca", "sharegpt", "openai"):
            got = results[f"{stem}.{fmt}"]
            if stem == "glaive_toolcall_en_demo" and fmt == "openai":
                continue  # the OpenAI writer's `tools` shape: see the finding 2
            assert got["ok"], got
            if not (stem == "glaive_toolcall_en_demo" and fmt == "alpaca"):  # tool records can't be Alpaca
                assert got["tokens_sha256"] == original["tokens_sha256"], (stem, fmt)

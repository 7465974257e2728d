"""The built wheel installs the trainer as sftdata.trainer (not the PyPI-owned `trainer`)
and carries templates/ and schemas/, so an installed copy works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.resources as r, importlib.util, sftdata, sftdata.trainer
assert sftdata.__file__.startswith({site!r}), sftdata.__file__
assert sftdata.trainer.__file__.startswith({site!r})
assert importlib.util.find_spec("trainer") is None or not importlib.util.find_spec("trainer").origin.startswith({site!r})
names = {{p.name for p in r.files("sftdata.schemas").iterdir()}}
assert "record.schema.json" in names, names
assert any(p.name.endswith((".j2", ".jinja")) for p in r.files("sftdata.templates").iterdir())
print("ok")
"""


def test_wheel_installs_trainer_templates_and_schemas(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("sftdata-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(site=str(site))],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert out.stdout.strip() == "ok", out.stderr

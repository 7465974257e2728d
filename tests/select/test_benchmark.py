"""The selection benchmarks end to end on the real bundled model, in tiny configurations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "selection"

pytestmark = pytest.mark.slow


def test_selection_benchmark_smallest_configuration(tmp_path, realworld):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    if not HERE.is_dir():
        pytest.skip("benchmarks/ not beside this copy of the tests")
    done = subprocess.run([sys.executable, str(HERE / "run.py"), "--smallest", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} == {"random", "ifd", "judge", "diversity", "combination"}
    assert all(0 < r["records"] <= results["budget"] and r["eval_loss"] > 0 for r in results["runs"])
    assert "| random |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ifd_speed_benchmark_prints_both_sides_and_agrees(realworld):  # both read the real-world files
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, str(HERE / "ifd_speed.py"), "--records", "4", "--runs", "1",
                           "--max-length", "128"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "per-record loop" in done.stdout and "ratio:" in done.stdout
    difference = float(done.stdout.split("largest IFD difference:")[1].split()[0])
    assert difference < 1e-3

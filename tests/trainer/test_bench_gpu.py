"""The GPU benchmark starts and reports both sides: its CPU dry run (tiny model), end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "trainer" / "bench_gpu.py"


@pytest.mark.slow
def test_the_gpu_benchmark_dry_run_reports_both_sides(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    if not SCRIPT.is_file():
        pytest.skip("benchmarks/ not beside this copy of the tests")
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads((tmp_path / "r.json").read_text())
    for side in ("trl", "sftdata"):
        r = run[side]
        assert r["trained_tokens"] > 0 and r["tps"] > 0 and 0 < r["mfu"] < 1 and r["eval_loss"] > 0
    assert abs(run["trl"]["trained_tokens"] - run["sftdata"]["trained_tokens"]) < 0.1 * run["sftdata"]["trained_tokens"]
    assert run["trl"]["settings"]["packing"] and run["trl"]["settings"]["padding_free"]
    assert "ratio sftdata / TRL" in done.stdout

"""Small helpers of the adversarial suite: data files and what a clean failure looks like."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def write_alpaca(path: Path, n: int = 5, start: int = 0) -> Path:
    """``n`` valid Alpaca records as JSON Lines."""
    rows = [{"instruction": f"Say the number {i} in words.", "input": "", "output": f"The number is {i}."}
            for i in range(start, start + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess, status: int = 2, *, contains: str = "") -> str:
    """The command failed with ``status`` and a single ``error:`` line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert contains in errors[0], errors[0]
    return errors[0]

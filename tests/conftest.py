"""Shared fixtures: the real-world data folder, a CLI runner that goes through the same
entry function as the installed ``sftdata`` command, and that command itself."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sftdata.cli import run_cli

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "realworld"
# The console script pip installed beside this interpreter (the command users type).
SFTDATA = Path(sys.executable).with_name("sftdata")


@pytest.fixture
def realworld() -> Path:
    """../shared/data/realworld, or a clean skip when this copy has no shared/ beside it."""
    if not REALWORLD.is_dir():
        pytest.skip(f"real-world data not found at {REALWORLD} (installed copy without ../shared)")
    return REALWORLD


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """``cli("convert", "in.json", "-o", "out.jsonl", "--to", "sharegpt") -> CliResult``,
    in-process through ``sftdata.cli.run_cli``: the function ``main()`` runs, so error
    lines and exit statuses are the installed command's."""

    def invoke(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = run_cli([str(a) for a in args])
        return CliResult(status, out.getvalue(), err.getvalue())

    return invoke


@pytest.fixture
def sftdata_cmd():
    """Run the installed ``sftdata`` command in a subprocess: ``sftdata_cmd(*args,
    cwd=..., timeout=...) -> CompletedProcess`` (text, stdout and stderr captured)."""
    if not SFTDATA.exists():
        pytest.skip(f"the sftdata command is not installed beside {sys.executable}")

    def run(*args, cwd=None, timeout=120, env=None, **kw) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        return subprocess.run([str(SFTDATA), *map(str, args)], cwd=cwd, timeout=timeout,
                              capture_output=True, text=True, env=full_env, **kw)

    return run

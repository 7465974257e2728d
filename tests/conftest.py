"""Shared fixtures: the real-world data folder, and a CLI runner that behaves like the
installed ``sftdata`` command (user errors exit 2 with one line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftdata.cli import app, load_commands
from sftdata.errors import UserError

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "realworld"


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
    """``cli("convert", "in.json", "-o", "out.jsonl", "--to", "sharegpt") -> CliResult``."""
    load_commands()
    runner = CliRunner()

    def invoke(*args: str) -> CliResult:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
        exc = result.exception
        if isinstance(exc, UserError):
            return CliResult(2, result.stdout, f"error: {exc}\n")
        if exc is not None and not isinstance(exc, SystemExit):
            raise exc
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke

"""Where a run's stages compute: in this process (``local``) or on a Ray cluster (``ray``).

An engine runs one stage's work and returns exactly what the local code returns, so the
runner's stage cache, rejects and audit do not depend on the engine (a stage cached by
one engine is reused by the other: the engine is not part of a stage's key).

- ``LocalEngine``: the step on the whole frame, the mix in this process.
- ``RayEngine`` (``sftdata.engine.ray_engine``, needs ``pip install 'sftdata[ray]'``):
  row-local steps as ``map_batches`` over Arrow blocks, the dedup steps as shuffles,
  the mix with its sources read in parallel; the same hashes, seeds and keep policy, so
  the same records and rejects.
"""

from __future__ import annotations

from typing import Protocol

import polars as pl

from sftdata.errors import UserError
from sftdata.steps.base import Step, StepResult

ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str

    def run_step(self, step: Step, frame: pl.DataFrame) -> StepResult:
        """What ``step(frame)`` returns (kept, rejected with reasons, report)."""

    def run_mix(self, params, base_dir, main: pl.DataFrame | None):
        """What ``sftdata.steps.mix_recipe.run_mix`` returns."""


class LocalEngine:
    """Everything in this process: today's behaviour."""

    name = "local"
    stats: dict = {}

    def run_step(self, step: Step, frame: pl.DataFrame) -> StepResult:
        return step(frame)

    def run_mix(self, params, base_dir, main):
        from sftdata.steps.mix_recipe import run_mix

        return run_mix(params, base_dir=base_dir, main=main)


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    return name


def get_engine(name: str = "local", log=None) -> Engine:
    """The engine called ``name``; ``ray`` connects to ``RAY_ADDRESS`` or starts a local
    cluster (see ``sftdata.engine.ray_cluster``)."""
    if check_engine(name) == "local":
        return LocalEngine()
    from sftdata.engine.ray_engine import RayEngine

    return RayEngine(log=log)

"""The Python API: the same reading, steps, mix, writing and runner as the commands.

Five functions over one value, ``Data`` (canonical records as a polars frame, plus every
reject so far and the reports of the steps that made it):

- ``read(path, fmt=None, columns=None, roles=None)``: any file the commands read
  (``sftdata convert``'s reader: formats detected, ``.gz``/``.zst``, ``-``, Arrow,
  Hub ids from the local cache), with the same column/role mapping;
- ``apply(data, steps)``: registered steps in order (``sftdata steps`` lists them), named
  as in a recipe: ``"exact_dedup"`` or ``{"length": {"min_words": 3}}``;
- ``mix(sources, total=None, ratios=None, seed=0, ...)``: ``sftdata mix``'s sampling;
- ``write(data, path, to)``: any output format; returns the write rejects;
- ``run(recipe_path, train=True)``: ``sftdata run``; returns the run summary.

Rejects are never dropped: each ``Data`` carries the read, step and mix rejects of the
records it came from (``data.rejects``, the reject entries of ``sftdata.rejects``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import polars as pl
from pydantic import ValidationError

from sftdata.errors import UserError


@dataclass
class Data:
    """Canonical records (``frame``), the rejects so far, the input format, step reports."""

    frame: pl.DataFrame
    rejects: list[dict] = field(default_factory=list)
    format: str = "canonical"
    reports: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return self.frame.height

    def records(self) -> list[dict]:
        """The records as dicts (``id``, ``messages``, ``tools``, ``source``, ``meta``)."""
        from sftdata.records import records_from_frame

        return records_from_frame(self.frame)

    def __repr__(self) -> str:
        return f"Data({len(self)} records, {len(self.rejects)} rejects, format={self.format!r})"


def read(path: str | os.PathLike, fmt: str | None = None, columns: str | None = None,
         roles: str | None = None) -> Data:
    """Read a data file into canonical records (``columns``/``roles`` as ``--columns``/``--roles``)."""
    from sftdata.convert import read_canonical
    from sftdata.mapping import mapping_from_options

    result = read_canonical(path, fmt=fmt, mapping=mapping_from_options(columns, roles, fmt))
    return Data(result.frame, list(result.rejects), result.format)


def _step_specs(steps: Iterable[str | dict]) -> list[tuple[str, dict]]:
    specs = []
    for item in steps:
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            specs.append((name, params or {}))
        else:
            raise UserError(f"a step is a name or {{name: params}}, not {item!r}")
    return specs


def apply(data: Data, steps: Iterable[str | dict]) -> Data:
    """Run registered steps on ``data`` in order; their rejects are added to ``data.rejects``."""
    from sftdata.rejects import rejects_from_frame
    from sftdata.steps.base import run_chain
    from sftdata.steps.registry import build_step

    built = []
    for name, params in _step_specs(steps):
        try:
            built.append(build_step(name, params))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise UserError(f"step {name!r}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    result = run_chain(data.frame, built)
    rejects = list(data.rejects)
    for name, rows in result.rejected:
        rejects += rejects_from_frame(rows, name)
    return Data(result.kept, rejects, data.format, list(data.reports) + list(result.reports))


def mix(sources: dict[str, Data], total: int | None = None, ratios: dict[str, float] | None = None,
        temperature: float | None = None, caps: dict[str, int] | None = None, seed: int = 0,
        replacement: str = "auto") -> Data:
    """Sample ``sources`` (name -> Data) into one shuffled set, as ``sftdata mix`` does."""
    from sftdata.steps.mix import MixSource, mix_with_unsampled

    outcome = mix_with_unsampled([MixSource(name, d.frame) for name, d in sources.items()], total, ratios,
                                 temperature, caps, seed, replacement)
    rejects = [r for d in sources.values() for r in d.rejects]
    return Data(outcome.frame, rejects, "canonical", [outcome.report])


def write(data: Data, path: str | os.PathLike, to: str) -> list[dict]:
    """Write ``data`` to ``path`` in format ``to`` (atomically); returns the write rejects."""
    from sftdata.convert import write_records

    return write_records(data.frame, path, to)


def run(recipe: str | os.PathLike, train: bool = True, overrides: list[str] | None = None) -> dict:
    """Run a recipe as ``sftdata run`` does (stages cached in its run directory); the summary."""
    from sftdata.recipe import load_recipe
    from sftdata.runner import run_recipe

    return run_recipe(load_recipe(recipe, overrides), Path(recipe), log=lambda *_: None, train=train)

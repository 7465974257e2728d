"""Reading the files to audit: the canonical frame plus what only the raw rows know.

The audit needs what the canonical frame does not keep: each file's format, and the
format's own facts about its raw rows (``ReadResult.facts``; for Alpaca, how many
records had an empty ``input``: once converted, the input is merged into the user turn
and cannot be told apart from the instruction). ``InputInfo`` keeps them with the
file's counts, for ``sftdata audit`` and for the audit inside ``sftdata run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import polars as pl

from sftdata.convert import ReadResult, read_canonical
from sftdata.records import empty_frame
from sftdata.rejects import count_reasons


@dataclass
class InputInfo:
    """One audited file: its format, rows read, records kept, and read rejects."""

    path: str
    source: str
    format: str
    rows_in: int
    records: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    # The format's facts about its raw rows (``sftdata.formats.facts``), e.g. Alpaca's
    # ``empty_input``: kept records whose ``input`` was missing, null or "".
    facts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_read(cls, path: str | os.PathLike, source: str, read: ReadResult) -> InputInfo:
        return cls(str(path), source, read.format, read.rows_in, read.frame.height,
                   count_reasons(read.rejects), dict(read.facts))

    @classmethod
    def from_dict(cls, data: dict) -> InputInfo:
        """An ``as_dict`` result (also one stored before facts were generic)."""
        data = dict(data)
        if "empty_input" in data:
            empty = data.pop("empty_input")
            data["facts"] = {**({"empty_input": empty} if empty is not None else {}), **data.get("facts", {})}
        return cls(**data)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class AuditInput:
    """Everything read from the audited files."""

    frame: pl.DataFrame
    inputs: list[InputInfo]
    rejects: list[dict]


def _source_names(paths: Sequence[Path]) -> list[str]:
    """File names, or the paths as given when two files share a name."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def read_file(path: str | os.PathLike, fmt: str | None, source: str,
              progress: Callable[[int], None] | None = None) -> tuple[pl.DataFrame, InputInfo, list[dict]]:
    """Read one file into the canonical frame, with its ``InputInfo`` and rejects."""
    read = read_canonical(path, fmt=fmt, source=source, progress=progress)
    return read.frame, InputInfo.from_read(path, source, read), read.rejects


def read_inputs(paths: Sequence[str | os.PathLike], fmt: str | None = None,
                progress: Callable[[int], None] | None = None) -> AuditInput:
    """Read every file (format detected per file unless ``fmt`` is given)."""
    paths = [Path(p) for p in paths]
    frames, infos, rejects = [], [], []
    for path, source in zip(paths, _source_names(paths)):
        frame, info, file_rejects = read_file(path, fmt, source, progress)
        frames.append(frame)
        infos.append(info)
        rejects.extend(file_rejects)
    frame = pl.concat(frames, how="vertical") if frames else empty_frame()
    return AuditInput(frame, infos, rejects)

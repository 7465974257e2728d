"""Reading the files to audit: the canonical frame plus what only the raw rows know.

The audit needs two facts the canonical frame does not keep: each file's format, and
for Alpaca files whether each record's ``input`` field was empty (once converted, the
input is merged into the user turn and cannot be told apart from the instruction). So
the files are read with the same functions ``read_canonical`` uses, keeping the raw
rows long enough to count empty inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import polars as pl

from sftdata.convert import rows_to_records
from sftdata.formats import check_format, detect_format
from sftdata.io import read_rows
from sftdata.records import empty_frame, frame_from_records


@dataclass
class InputInfo:
    """One audited file: its format, rows read, records kept, and read rejects."""

    path: str
    source: str
    format: str
    rows_in: int
    records: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    # Alpaca only: how many kept records had an empty ``input`` (missing, null or "").
    empty_input: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class AuditInput:
    """Everything read from the audited files."""

    frame: pl.DataFrame
    inputs: list[InputInfo]
    rejects: list[dict]


def _is_empty_input(row: dict) -> bool:
    value = row.get("input")
    return value is None or (isinstance(value, str) and value == "")


def _source_names(paths: Sequence[Path]) -> list[str]:
    """File names, or the paths as given when two files share a name."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def read_file(path: str | os.PathLike, fmt: str | None, source: str,
              progress: Callable[[int], None] | None = None) -> tuple[pl.DataFrame, InputInfo, list[dict]]:
    """Read one file into the canonical frame, with its ``InputInfo`` and rejects."""
    rows = list(read_rows(path))
    good = (r.data for r in rows if r.data is not None)
    fmt = check_format(fmt) if fmt else (detect_format(good) if rows else "canonical")
    records, rejects = rows_to_records(rows, fmt, source, progress)
    empty = None
    if fmt == "alpaca":
        bad = {r["location"] for r in rejects}
        empty = sum(1 for r in rows if r.data is not None and r.location not in bad
                    and _is_empty_input(r.data))
    reasons: dict[str, int] = {}
    for reject in rejects:
        reasons[reject["reason"]] = reasons.get(reject["reason"], 0) + 1
    info = InputInfo(str(path), source, fmt, len(rows), len(records), reasons, empty)
    frame = frame_from_records(records) if records else empty_frame()
    return frame, info, rejects


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

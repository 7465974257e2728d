"""The rejects file: every record a stage could not use, with where it came from and why.

One JSON line per reject::

    {"source": "in.jsonl", "location": 12, "stage": "read", "reason": "bad_json",
     "detail": null, "id": null, "record": <the raw record or line>}

``location`` is the 1-based line for JSONL inputs and the 0-based index otherwise; it is
null for records rejected by a later step (which name the record ``id`` instead).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from sftdata.io import write_rows
from sftdata.records import records_from_frame
from sftdata.steps.base import DETAIL, REASON


def make_reject(
    *,
    source: str,
    stage: str,
    reason: str,
    record: Any,
    location: int | None = None,
    detail: dict | None = None,
    id: str | None = None,
) -> dict:
    """One reject entry (see the module docstring for the fields)."""
    return {
        "source": source,
        "location": location,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "id": id,
        "record": record,
    }


def rejects_from_frame(rejected: pl.DataFrame, stage: str) -> list[dict]:
    """Reject entries for the rows a step dropped (canonical columns + reason/detail)."""
    if rejected.height == 0:
        return []
    records = records_from_frame(rejected)
    out = []
    for record, reason, detail in zip(records, rejected[REASON], rejected[DETAIL]):
        out.append(
            make_reject(
                source=record["source"],
                stage=stage,
                reason=reason,
                record=record,
                detail=json.loads(detail) if detail else None,
                id=record["id"],
            )
        )
    return out


REJECTS_FOLDER = ".rejects"


def default_rejects_path(output: str | os.PathLike) -> Path:
    """``out/data.jsonl`` -> ``out/.rejects/data.rejects.jsonl``.

    A hidden folder, because data loaders pointed at the output's folder read every file
    in it: ``datasets.load_dataset("json", data_dir=...)`` takes every file below the
    folder except hidden ones (names starting with ``.`` or ``_``), so a rejects file of
    other columns beside the data fails the whole load (``DatasetGenerationCastError``).
    For ``-`` (stdout) the rejects go to ``./.rejects/stdout.rejects.jsonl``.
    """
    output = Path(output)
    name = output.name
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    stem = "stdout" if str(output) == "-" else Path(name).stem
    return output.parent / REJECTS_FOLDER / f"{stem}.rejects.jsonl"


def write_rejects(path: str | os.PathLike, rejects: Iterable[dict]) -> int:
    """Write the rejects atomically as JSONL; returns how many were written."""
    return write_rows(path, rejects)


def count_reasons(rejects: Iterable[dict]) -> dict[str, int]:
    """Rejects by reason code, most frequent first."""
    return dict(Counter(r["reason"] for r in rejects).most_common())

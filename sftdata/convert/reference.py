"""The record-by-record conversion: the reference the vectorised path is tested against.

Each row goes through the format's pure converter (``sftdata.formats``) as a Python
dict. This is the definition of what a conversion gives, rejects included: the
vectorised path sends every row it cannot prove to these functions, and the tests
compare the two on clean, messy and pathological input.
"""

from __future__ import annotations

from typing import Callable

from sftdata.errors import RecordError
from sftdata.formats import FORMATS, check_format
from sftdata.rawrows import RawRow
from sftdata.records import record_id
from sftdata.rejects import make_reject

Progress = Callable[[int], None]


def canonical_record(converted: dict, source: str) -> dict:
    """Finish a converter's output: the input's own id if it had one, else a hash."""
    meta = converted.get("meta") or {}
    given = converted.get("id")
    if given is None and isinstance(meta.get("id"), (str, int)) and not isinstance(meta.get("id"), bool):
        given = meta["id"]
    return {
        "id": str(given) if given is not None else record_id(converted["messages"], converted.get("tools")),
        "messages": converted["messages"],
        "tools": converted.get("tools"),
        "source": converted.get("source") or source,
        "meta": meta,
    }


def row_to_record(row: RawRow, fmt: str, source: str) -> tuple[dict | None, dict | None]:
    """(record, None) or (None, reject) for one raw row."""
    if row.error is not None:
        return None, make_reject(source=source, location=row.location, stage="read",
                                 reason=row.error, record=row.raw)
    try:
        return canonical_record(FORMATS[fmt].to_canonical(row.data), source), None
    except RecordError as exc:
        return None, make_reject(source=source, location=row.location, stage="read",
                                 reason=exc.reason, record=row.data)


def rows_to_records(
    rows: list[RawRow], fmt: str, source: str, progress: Progress | None = None
) -> tuple[list[dict], list[dict]]:
    """Convert raw rows of one format; returns (records, rejects)."""
    records, rejects = [], []
    for n, row in enumerate(rows, start=1):
        record, reject = row_to_record(row, fmt, source)
        if record is not None:
            records.append(record)
        else:
            rejects.append(reject)
        if progress and n % 1000 == 0:
            progress(1000)
    if progress:
        progress(len(rows) % 1000)
    return records, rejects


def record_to_row(record: dict, to: str) -> tuple[dict | None, dict | None]:
    """(row of format ``to``, None) or (None, reject) for one canonical record."""
    try:
        return FORMATS[to].from_canonical(record), None
    except RecordError as exc:
        return None, make_reject(source=record["source"], stage="write", reason=exc.reason,
                                 record=record, id=record["id"])


def records_to_rows(records: list[dict], to: str) -> tuple[list[dict], list[dict]]:
    """Canonical records as rows of format ``to``; unrepresentable ones become rejects."""
    check_format(to)
    rows, rejects = [], []
    for record in records:
        row, reject = record_to_row(record, to)
        if row is not None:
            rows.append(row)
        else:
            rejects.append(reject)
    return rows, rejects

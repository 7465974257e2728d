"""Files in any supported format <-> the canonical DataFrame, with every reject kept.

``read_canonical`` is how every stage reads user data; ``write_records`` is how every
stage writes it in the format the user asked for. Neither stops on a bad record: each
one becomes a reject entry (``sftdata.rejects``) with its file, location and reason.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import polars as pl

from sftdata.errors import RecordError, UserError
from sftdata.formats import FORMATS, check_format, detect_format
from sftdata.io import EXTENSIONS, RawRow, read_rows, write_rows
from sftdata.records import frame_from_records, record_id, records_from_frame
from sftdata.rejects import make_reject

Progress = Callable[[int], None]


@dataclass
class ReadResult:
    """A file read into canonical records, plus what could not be read and why."""

    frame: pl.DataFrame
    rejects: list[dict] = field(default_factory=list)
    format: str = ""
    rows_in: int = 0
    # Alpaca only: kept records whose ``input`` was missing, null or "". Once converted the
    # input is merged into the user turn, so only the raw rows can tell (the audit needs it).
    empty_input: int | None = None


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


def rows_to_records(
    rows: list[RawRow], fmt: str, source: str, progress: Progress | None = None
) -> tuple[list[dict], list[dict]]:
    """Convert raw rows of one format; returns (records, rejects)."""
    to_canonical = FORMATS[fmt].to_canonical
    records, rejects = [], []
    for n, row in enumerate(rows, start=1):
        if row.error is not None:
            rejects.append(make_reject(source=source, location=row.location, stage="read",
                                       reason=row.error, record=row.raw))
        else:
            try:
                records.append(canonical_record(to_canonical(row.data), source))
            except RecordError as exc:
                rejects.append(make_reject(source=source, location=row.location, stage="read",
                                           reason=exc.reason, record=row.data))
        if progress and n % 1000 == 0:
            progress(1000)
    if progress:
        progress(len(rows) % 1000)
    return records, rejects


def read_canonical(
    path: str | os.PathLike,
    fmt: str | None = None,
    source: str | None = None,
    progress: Progress | None = None,
) -> ReadResult:
    """Read a .json/.jsonl/.parquet/.csv file in any format into the canonical frame.

    ``fmt`` forces the input format (else it is detected from the columns); ``source``
    names the records' origin (default: the file name).
    """
    rows = list(read_rows(path))
    if rows and not fmt and all(r.data is None for r in rows):
        raise UserError(_nothing_readable(Path(path), rows))
    good = (r.data for r in rows if r.data is not None)
    fmt = check_format(fmt) if fmt else (detect_format(good) if rows else "canonical")
    records, rejects = rows_to_records(rows, fmt, source or Path(path).name, progress)
    empty = None
    if fmt == "alpaca":
        failed = {r["location"] for r in rejects}
        empty = sum(1 for r in rows if r.data is not None and r.location not in failed
                    and r.data.get("input") in (None, ""))
    return ReadResult(frame_from_records(records), rejects, fmt, len(rows), empty)


_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
               b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}


def _nothing_readable(path: Path, rows: list[RawRow]) -> str:
    """Why a file none of whose rows decoded has no detectable format, in one line."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            return (f"{path}: this is a {kind}-compressed file; decompress it first "
                    f"(sftdata reads plain {', '.join(EXTENSIONS)} files)")
    reasons = ", ".join(f"{reason} {n}" for reason, n in Counter(r.error for r in rows).most_common())
    return (f"{path}: none of its {len(rows):,} rows is a readable record ({reasons}); is it "
            f"really {path.suffix or 'JSON'}? (--from FORMAT keeps them all as rejects)")


def records_to_rows(records: list[dict], to: str) -> tuple[list[dict], list[dict]]:
    """Canonical records as rows of format ``to``; unrepresentable ones become rejects."""
    from_canonical = FORMATS[check_format(to)].from_canonical
    rows, rejects = [], []
    for record in records:
        try:
            rows.append(from_canonical(record))
        except RecordError as exc:
            rejects.append(make_reject(source=record["source"], stage="write", reason=exc.reason,
                                       record=record, id=record["id"]))
    return rows, rejects


def write_records(frame: pl.DataFrame, path: str | os.PathLike, to: str) -> list[dict]:
    """Write the canonical frame to ``path`` in format ``to`` (atomically); returns rejects."""
    rows, rejects = records_to_rows(records_from_frame(frame), to)
    write_rows(path, rows)
    return rejects


class Converted(NamedTuple):
    """What ``convert_file`` did: rows read, rows written, rejects (read then write), format."""

    rows_in: int
    rows_out: int
    rejects: list[dict]
    format: str


def convert_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    to: str,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> Converted:
    """Convert a file to format ``to``, file to file; the output is written atomically.

    Alpaca .jsonl -> ShareGPT/OpenAI .jsonl takes the vectorised polars path
    (``sftdata.formats.fast_run``); everything else reads and writes record by record.
    Both give the same output rows and the same rejects.
    """
    from sftdata.formats import fast, fast_run

    check_format(to)
    plan = fast.plan(input, output, to, fmt)
    if plan is not None:
        rows_in, rows_out, rejects = fast_run.convert(plan, progress)
        return Converted(rows_in, rows_out, rejects, "alpaca")
    result = read_canonical(input, fmt=fmt, progress=progress)
    write_rejected = write_records(result.frame, output, to)
    return Converted(result.rows_in, result.frame.height - len(write_rejected),
                     result.rejects + write_rejected, result.format)

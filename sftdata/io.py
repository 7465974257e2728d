"""Reading and writing rows of .json (array), .jsonl, .parquet and .csv, by extension.

Reading yields ``RawRow``s: the row's location (1-based line for JSONL, 0-based index
for JSON arrays, Parquet and CSV), the decoded object, or the reason it could not be
decoded (``bad_json``, ``bad_utf8``, ``not_an_object``) and its raw text, so that one bad
line never stops a run. Writing is atomic (``sftdata.atomic``): data goes to a temp
file in the target folder, which is renamed over the target only once it is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import polars as pl

from sftdata.atomic import atomic_dir, atomic_path, os_reason  # noqa: F401 - the writers' home
from sftdata.errors import OutputError, UserError

EXTENSIONS = (".json", ".jsonl", ".parquet", ".csv")
# Columns that hold nested JSON; in CSV they are stored as JSON text.
NESTED_COLUMNS = ("conversations", "messages", "history", "tool_calls", "meta")


@dataclass
class RawRow:
    """One input row: where it was, what it decoded to, or why it did not decode."""

    location: int
    data: dict | None
    raw: str | None = None
    error: str | None = None


def extension(path: str | os.PathLike) -> str:
    """The file kind by extension (``.jsonl``, ``.json``...); a one-line error otherwise."""
    ext = Path(path).suffix.lower()
    if ext == ".ndjson":
        return ".jsonl"
    if ext not in EXTENSIONS:
        raise UserError(
            f"{path}: unknown extension {ext or '(none)'!r}; use one of {', '.join(EXTENSIONS)}"
        )
    return ext


def location_kind(path: str | os.PathLike) -> str:
    """What a row's location means for this file: ``line`` (JSONL) or ``index``."""
    return "line" if extension(path) == ".jsonl" else "index"


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable (permission denied)")


def has_lone_surrogate(obj) -> bool:
    """True when decoded JSON holds a lone UTF-16 surrogate (``"\\ud800"``): such text
    cannot be written as UTF-8, so the record is rejected on read instead."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_line(location: int, line: bytes) -> RawRow:
    """One JSON Lines line as a ``RawRow`` (an object, or the reason it is not one)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(location, None, line.decode("utf-8", errors="replace"), "bad_utf8")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, nested too deep, an integer too long
        return RawRow(location, None, text, "bad_json")
    if not isinstance(obj, dict):
        return RawRow(location, None, text, "not_an_object")
    if "\\u" in text and has_lone_surrogate(obj):
        return RawRow(location, None, text, "lone_surrogate")
    return RawRow(location, obj)


def _jsonl_rows(data: bytes) -> Iterator[RawRow]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield decode_line(number, line.rstrip(b"\r"))


def _json_rows(path: Path, data: bytes) -> Iterator[RawRow]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        # Many ".json" files are really JSON Lines; read them as such when every
        # non-blank line starts an object, otherwise report where the document breaks.
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if len(lines) > 1 and all(ln.lstrip().startswith(b"{") for ln in lines):
            yield from _jsonl_rows(data)
            return
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # nested too deep, an integer too long
        raise UserError(f"{path}: cannot be read as JSON ({str(exc).split(';')[0]})") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise UserError(f"{path}: a .json file must hold an array of records")
    may_have_surrogates = b"\\u" in data
    for index, obj in enumerate(doc):
        if isinstance(obj, dict) and may_have_surrogates and has_lone_surrogate(obj):
            yield RawRow(index, None, json.dumps(obj), "lone_surrogate")
        elif isinstance(obj, dict):
            yield RawRow(index, obj)
        else:
            yield RawRow(index, None, json.dumps(obj, ensure_ascii=False), "not_an_object")


def _table_rows(frame: pl.DataFrame, decode_nested: bool) -> Iterator[RawRow]:
    for index, row in enumerate(frame.iter_rows(named=True)):
        if decode_nested:
            for key in NESTED_COLUMNS:
                value = row.get(key)
                if isinstance(value, str) and value[:1] in "[{":
                    try:
                        row[key] = json.loads(value)
                    except (ValueError, RecursionError):
                        pass  # left as text; the converter rejects it with a reason
        yield RawRow(index, row)


def _check_csv_header(path: Path) -> None:
    """A column named twice is an error: polars would silently rename the second copy
    (``output_duplicated_0``) and its values would end up in ``meta``."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    seen = set()
    for name in header:
        if name in seen:
            raise UserError(f"{path}: the header names column {name!r} twice; rename one")
        seen.add(name)


def read_rows(path: str | os.PathLike) -> Iterator[RawRow]:
    """Every row of a data file, in order; bad rows come back with an ``error`` code."""
    path = Path(path)
    ext = extension(path)
    _check_readable(path)
    try:
        if ext in (".json", ".jsonl"):
            data = path.read_bytes()
            rows = _jsonl_rows(data) if ext == ".jsonl" else _json_rows(path, data)
            yield from rows
        elif ext == ".parquet":
            yield from _table_rows(pl.read_parquet(path), decode_nested=False)
        else:
            _check_csv_header(path)
            frame = pl.read_csv(path, infer_schema=False)
            yield from _table_rows(frame, decode_nested=True)
    except UserError:
        raise
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def dumps(obj: Any) -> str:
    """Compact JSON keeping non-ASCII text as is (CJK stays readable in outputs)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def write_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write dict rows to ``path`` atomically, in the format its extension names."""
    ext = extension(path)
    count = 0
    with atomic_path(path) as tmp:
        if ext in (".jsonl", ".json"):
            with open(tmp, "w", encoding="utf-8") as out:
                if ext == ".json":
                    out.write("[")
                for count, row in enumerate(rows, start=1):
                    if ext == ".json":
                        out.write(",\n" if count > 1 else "\n")
                    out.write(dumps(row))
                    if ext == ".jsonl":
                        out.write("\n")
                if ext == ".json":
                    out.write("\n]\n")
        else:
            rows = list(rows)
            count = len(rows)
            if ext == ".csv":
                rows = [
                    {k: dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
                    for r in rows
                ]
            frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
            if ext == ".csv":
                frame.write_csv(tmp)
            else:
                frame.write_parquet(tmp)
    return count


def write_frame(path: str | os.PathLike, frame: pl.DataFrame) -> int:
    """Write a DataFrame atomically by extension (nested columns as JSON text in CSV)."""
    ext = extension(path)
    with atomic_path(path) as tmp:
        if ext == ".jsonl":
            frame.write_ndjson(tmp)
        elif ext == ".json":
            frame.write_json(tmp)
        elif ext == ".parquet":
            frame.write_parquet(tmp)
        else:
            nested = [c for c, t in frame.schema.items() if t.is_nested()]
            frame.with_columns(
                pl.col(c).map_elements(lambda v: dumps(v.to_list() if hasattr(v, "to_list") else v),
                                       return_dtype=pl.String)
                for c in nested
            ).write_csv(tmp)
    return frame.height


class JsonlAppender:
    """Append JSON lines to a file, flushed and fsynced per batch, for resumable runs.

    A crash can leave a partial last line; ``read_complete_lines`` drops it on resume.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._failed = False

    def append(self, rows: Iterable[dict]) -> None:
        try:
            for row in rows:
                self._file.write(dumps(row) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._failed = True
            raise OutputError(f"cannot write {self.path}: {os_reason(exc)}") from None

    def close(self) -> None:
        """Close the file; after a failed append the unwritten rest is dropped quietly
        (the failure was reported; resuming cuts a torn last line)."""
        try:
            self._file.close()
        except OSError as exc:
            if not self._failed:
                raise OutputError(f"cannot write {self.path}: {os_reason(exc)}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_complete_lines(path: str | os.PathLike) -> list[dict]:
    """The complete JSON lines of an appended file; a torn last line is cut off the file."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return [json.loads(line) for line in data[:good_end].split(b"\n") if line.strip()]

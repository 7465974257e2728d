"""Files: their kinds, atomic writes, and writing rows; JSON as sftdata writes it.

``extension`` names a file's kind (``.json`` array, ``.jsonl``, ``.parquet``, ``.csv``)
or gives a one-line error. Writing is atomic (``sftdata.atomic``): data goes to a temp file in the target
folder, which is renamed over the target only once it is complete (``atomic_path``,
``atomic_dir``). ``write_rows`` writes dict rows in any kind; in Parquet and CSV a column
whose values are nested or of mixed types is JSON text (``rows_to_table``) and a
Parquet file lists those columns in its key-value metadata (``PARQUET_KEY``). Reading
rows back, record by record, is ``sftdata.rawrows``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from sftdata.atomic import atomic_dir, atomic_path, os_reason  # noqa: F401 - the writers' home
from sftdata.errors import OutputError, UserError

EXTENSIONS = (".json", ".jsonl", ".parquet", ".csv", ".arrow")
# Also read and written: NAME.EXT.gz / NAME.EXT.zst (JSON kinds), .feather / .ipc (Arrow),
# and "-" for standard input / output (JSON Lines); see sftdata.inputs.
# The key of the Parquet key-value metadata sftdata writes: JSON with the format, the
# columns whose values are JSON text, and the name of each message's extra-keys field.
PARQUET_KEY = "sftdata"


def extension(path: str | os.PathLike) -> str:
    """The file kind by extension (``.jsonl``, ``.json``...); a one-line error otherwise.

    ``-`` (stdin/stdout) is JSON Lines; a ``.gz`` / ``.zst`` suffix names the kind
    inside; ``.feather`` and ``.ipc`` are ``.arrow``.

    >>> extension("data.jsonl.zst"), extension("-"), extension("d.feather")
    ('.jsonl', '.jsonl', '.arrow')
    """
    if str(path) == "-":
        return ".jsonl"
    name = Path(path).name
    compressed = Path(name).suffix.lower() in (".gz", ".zst")
    ext = Path(name[: -len(Path(name).suffix)] if compressed else name).suffix.lower()
    ext = {".ndjson": ".jsonl", ".feather": ".arrow", ".ipc": ".arrow"}.get(ext, ext)
    if ext not in EXTENSIONS:
        raise UserError(
            f"{path}: unknown extension {ext or '(none)'!r}; use one of {', '.join(EXTENSIONS)} "
            "(.gz or .zst after a JSON one)"
        )
    if compressed and ext not in (".json", ".jsonl", ".csv"):
        raise UserError(f"{path}: {ext} files compress themselves; drop the {Path(name).suffix} suffix")
    return ext


def location_kind(path: str | os.PathLike) -> str:
    """What a row's location means for this file: ``line`` (JSONL) or ``index``."""
    return "line" if extension(path) == ".jsonl" else "index"


def check_readable(path: Path) -> None:
    """A one-line error unless ``path`` is a readable file."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable (permission denied)")




def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as the strings ``"NaN"``, ``"Infinity"``..."""
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any) -> str:
    """Compact JSON keeping non-ASCII text as is (CJK stays readable in outputs).

    Never bare ``NaN``/``Infinity`` (not JSON): records holding them are rejects, and in
    a reject's raw record they are written as strings.
    """
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default,
                          allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"),
                          default=_json_default)


_I64 = (-(1 << 63), (1 << 63) - 1)


def _kind(value: Any) -> str | None:
    """The column kind a value can go in: str, bool, int, float, or json (None: any)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _I64[0] <= value <= _I64[1] else "json"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


_DTYPES = {"str": pl.String, "bool": pl.Boolean, "int": pl.Int64, "float": pl.Float64}


def column_kind(values: Iterable[Any]) -> str:
    """One kind for a column: the values' common kind, else ``json`` (JSON text), so a
    column that mixes types (a string in one row and a list in another, ints beyond
    64 bits, ints beside floats) keeps every value exactly."""
    kinds = {k for k in map(_kind, values) if k is not None}
    return kinds.pop() if len(kinds) == 1 else ("json" if kinds else "str")


def table_column(name: str, values: list, kind: str) -> pl.Series:
    """A column of ``kind`` (``column_kind``); json values become compact JSON text."""
    if kind == "json":
        return pl.Series(name, [None if v is None else dumps(v) for v in values], dtype=pl.String)
    return pl.Series(name, values, dtype=_DTYPES[kind], strict=True)


def rows_to_table(rows: list[dict]) -> tuple[pl.DataFrame, list[str]]:
    """Dict rows as a table for Parquet/CSV, and the names of its JSON-text columns.

    Each key is a column (a row without it has null there); see ``column_kind``.
    """
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns, json_columns = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        kind = column_kind(values)
        if kind == "json":
            json_columns.append(name)
        columns.append(table_column(name, values, kind))
    return pl.DataFrame(columns), json_columns


def parquet_metadata(json_columns: list[str], **info) -> dict[str, str]:
    """The key-value metadata sftdata writes into a Parquet file (``PARQUET_KEY``)."""
    return {PARQUET_KEY: json.dumps({"version": 1, "json_columns": json_columns, **info})}


def write_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write dict rows to ``path`` atomically, in the format its extension names.

    In Parquet and CSV every nested value is JSON text (see ``rows_to_table``).
    """
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
            frame, json_columns = rows_to_table(rows)
            if ext == ".csv":
                frame.write_csv(tmp)
            else:
                frame.write_parquet(tmp, metadata=parquet_metadata(json_columns))
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

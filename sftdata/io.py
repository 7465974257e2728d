"""Reading and writing rows of .json (array), .jsonl, .parquet and .csv, by extension.

Reading yields ``RawRow``s: the row's location (1-based line for JSONL, 0-based index
for JSON arrays, Parquet and CSV), the decoded object, or the reason it could not be
decoded and its raw text, so that one bad line never stops a run. This is the
record-by-record reference reader (``sftdata.convert`` reads vectorised and falls back
to it). The reasons: ``bad_json``, ``bad_utf8``, ``not_an_object``, ``lone_surrogate``,
``non_finite_number`` (``NaN``, ``Infinity``, or a float too large, which JSON cannot
hold), ``number_too_large`` (an integer of more than 4,300 digits) and
``too_deeply_nested``. A UTF-8 byte order mark at the start of a file is skipped.

Parquet and CSV columns of types JSON has no form for (dates, decimals, binary...) are
cast by ``sftdata.jsonvalues``' rule first; in those files a null inside a nested
known column (``messages``, ``conversations``, ``tools``, ``history``) means "absent"
(a columnar file cannot tell the two apart). A Parquet file written by sftdata records
in its key-value metadata which columns hold JSON text (``PARQUET_KEY``).

Writing is atomic: data goes to a temp file in the target folder, which is renamed over
the target only once it is complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import polars as pl

from sftdata.errors import UserError
from sftdata.jsonvalues import jsonable_frame

EXTENSIONS = (".json", ".jsonl", ".parquet", ".csv")
# Columns that hold nested JSON; in CSV they are stored as JSON text.
NESTED_COLUMNS = ("conversations", "messages", "history", "tool_calls", "meta", "tools")
# Known columns whose nested nulls mean "absent" in a columnar file.
SPARSE_COLUMNS = ("conversations", "messages", "tools", "history")
BOM = b"\xef\xbb\xbf"
# The key of the Parquet key-value metadata sftdata writes: JSON with the format, the
# columns whose values are JSON text, and the name of each message's extra-keys field.
PARQUET_KEY = "sftdata"


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


def check_readable(path: Path) -> None:
    """A one-line error unless ``path`` is a readable file."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable (permission denied)")


_check_readable = check_readable


def has_lone_surrogate(obj) -> bool:
    """True when decoded JSON holds a lone UTF-16 surrogate (``"\\ud800"``): such text
    cannot be written as UTF-8, so the record is rejected on read instead."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _NonFinite(ValueError):
    pass


def _no_constant(name: str):
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NonFinite(text)
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses what JSON cannot hold: ``NaN``/``Infinity`` and floats
    that overflow (``_NonFinite``, a ValueError)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def decode_error(exc: BaseException) -> str:
    """The reject reason for an exception ``loads`` raised."""
    if isinstance(exc, _NonFinite):
        return "non_finite_number"
    if isinstance(exc, RecursionError):
        return "too_deeply_nested"
    if isinstance(exc, json.JSONDecodeError):
        return "bad_json"
    return "number_too_large"  # int() refuses more than sys.get_int_max_str_digits()


def decode_line(location: int, line: bytes) -> RawRow:
    """One JSON Lines line as a ``RawRow`` (an object, or the reason it is not one)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(location, None, line.decode("utf-8", errors="replace"), "bad_utf8")
    try:
        obj = loads(text)
    except (ValueError, RecursionError) as exc:
        return RawRow(location, None, text, decode_error(exc))
    if not isinstance(obj, dict):
        return RawRow(location, None, text, "not_an_object")
    if "\\u" in text and has_lone_surrogate(obj):
        return RawRow(location, None, text, "lone_surrogate")
    return RawRow(location, obj)


def strip_bom(data: bytes) -> bytes:
    """``data`` without a UTF-8 byte order mark at its start."""
    return data[3:] if data.startswith(BOM) else data


def _jsonl_rows(data: bytes) -> Iterator[RawRow]:
    for number, line in enumerate(strip_bom(data).split(b"\n"), start=1):
        if line.strip():
            yield decode_line(number, line.rstrip(b"\r"))


def line_blocks(path: str | os.PathLike, block_bytes: int) -> Iterator[bytes]:
    """Consecutive blocks of whole lines; only the last one may lack its newline."""
    with open(path, "rb") as f:
        while True:
            start = f.tell()
            data = f.read(block_bytes)
            if len(data) < block_bytes:
                if data:
                    yield data
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a block
                block_bytes *= 2
                f.seek(start)
                continue
            if cut < len(data):
                f.seek(start + cut)
                data = data[:cut]
            yield data


def array_elements(text: str) -> list[tuple[int, int]] | None:
    """(start, end) of each element of the JSON array ``text``, found without decoding
    the elements (strings are skipped whole), or None when ``text`` is not one array."""
    import re

    depth, start, spans = 0, None, []
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth == 1 and token == "[":
                start = match.end()
                continue
        elif token in "]}":
            depth -= 1
            if depth == 0:
                if text[start:match.start()].strip():
                    spans.append((start, match.start()))
                return spans if not text[match.end():].strip() else None
        elif token == "," and depth == 1:
            spans.append((start, match.start()))
            start = match.end()
        if depth == 0:
            return None
    return None


def _json_element(index: int, text: str) -> RawRow:
    try:
        obj = loads(text)
    except (ValueError, RecursionError) as exc:
        return RawRow(index, None, text.strip(), decode_error(exc))
    return _json_row(index, obj, "\\u" in text)


def _json_row(index: int, obj: Any, may_have_surrogates: bool) -> RawRow:
    if isinstance(obj, dict) and may_have_surrogates and has_lone_surrogate(obj):
        return RawRow(index, None, json.dumps(obj), "lone_surrogate")
    if isinstance(obj, dict):
        return RawRow(index, obj)
    return RawRow(index, None, json.dumps(obj, ensure_ascii=False), "not_an_object")


def _json_rows(path: Path, data: bytes) -> Iterator[RawRow]:
    data = strip_bom(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8") from None
    try:
        doc = loads(text)
    except json.JSONDecodeError as exc:
        # Many ".json" files are really JSON Lines; read them as such when every
        # non-blank line starts an object, otherwise report where the document breaks.
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if len(lines) > 1 and all(ln.lstrip().startswith(b"{") for ln in lines):
            yield from _jsonl_rows(data)
            return
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:
        # One element JSON cannot hold (NaN, a huge number, deep nesting): the others
        # are still read, each on its own.
        spans = array_elements(text)
        if spans is None:
            raise UserError(f"{path}: not valid JSON ({decode_error(exc)})") from None
        for index, (start, end) in enumerate(spans):
            yield _json_element(index, text[start:end])
        return
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise UserError(f"{path}: a .json file must hold an array of records")
    may_have_surrogates = b"\\u" in data
    for index, obj in enumerate(doc):
        yield _json_row(index, obj, may_have_surrogates)


def _without_nulls(value: Any) -> Any:
    """Dicts inside ``value`` without their None entries (a columnar "absent")."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def parquet_info(path: str | os.PathLike) -> dict:
    """What sftdata wrote into a Parquet file's metadata (empty for other files)."""
    try:
        meta = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError):
        return {}
    try:
        info = json.loads(meta.get(PARQUET_KEY) or "{}")
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def _unpack_extra(message: Any, field: str) -> Any:
    """A message (or tool call) whose ``field`` holds its extra keys as JSON text, with
    those keys put back beside the others (as the input had them)."""
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [_unpack_extra(c, field) for c in out["tool_calls"]]
    if not isinstance(out.get(field), str):
        return out
    try:
        extra = json.loads(out[field])
    except json.JSONDecodeError:
        return out
    if not isinstance(extra, dict):
        return out
    del out[field]
    for key, value in extra.items():
        out.setdefault(key, value)
    return out


def table_row(row: dict, decode_nested: bool, info: dict) -> dict:
    """One Parquet/CSV row as the converters read it (see the module docstring): JSON
    text in a known nested column (one that starts with ``[`` or ``{``) is decoded."""
    json_columns = set(info.get("json_columns") or ())
    extra_field = info.get("message_extra")
    for key, value in row.items():
        if isinstance(value, str) and (key in json_columns or (
                decode_nested and key in NESTED_COLUMNS and value[:1] in "[{")):
            try:
                row[key] = loads(value)
            except (ValueError, RecursionError):
                pass  # left as text; the converter rejects it with a reason
    for key in SPARSE_COLUMNS:
        if isinstance(row.get(key), (list, dict)):
            row[key] = _without_nulls(row[key])
    if extra_field:
        for key in ("messages", "conversations"):
            if isinstance(row.get(key), list):
                row[key] = [_unpack_extra(m, extra_field) for m in row[key]]
    return row


def read_table(path: Path) -> pl.LazyFrame:
    """A Parquet or CSV file as a lazy frame (CSV: every column as text)."""
    if extension(path) == ".parquet":
        return pl.scan_parquet(path)
    return pl.scan_csv(path, infer_schema=False)


def _table_rows(frame: pl.DataFrame, decode_nested: bool, info: dict, first: int = 0
                ) -> Iterator[RawRow]:
    try:
        frame = jsonable_frame(frame)
    except TypeError:
        pass  # a column of a type without a JSON form: its rows are rejected one by one
    for index, row in enumerate(frame.iter_rows(named=True), start=first):
        yield RawRow(index, table_row(row, decode_nested, info))


def read_rows(path: str | os.PathLike) -> Iterator[RawRow]:
    """Every row of a data file, in order; bad rows come back with an ``error`` code."""
    path = Path(path)
    ext = extension(path)
    check_readable(path)
    try:
        if ext in (".json", ".jsonl"):
            data = path.read_bytes()
            rows = _jsonl_rows(data) if ext == ".jsonl" else _json_rows(path, data)
            yield from rows
        else:
            info = parquet_info(path) if ext == ".parquet" else {}
            yield from _table_rows(read_table(path).collect(), True, info)
    except UserError:
        raise
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None


# The process umask, read once (reading it means setting it). Temp files and folders are
# created private; outputs get the permissions a plain open() would have given them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, replace: bool = True):
    """Yield a temp folder beside ``target``; move it into place only on success.

    ``replace=False`` keeps a ``target`` that already exists (e.g. another process
    finished the same work first) and discards the temp copy. The temp folder is always
    removed, so a killed or failed write leaves nothing half-written at ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if target.exists() and replace:
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if replace or not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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

    def append(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self._file.write(dumps(row) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

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

"""Rows of a data file, record by record: the reference reader.

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
in its key-value metadata which columns hold JSON text (``sftdata.io.PARQUET_KEY``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import polars as pl

from sftdata.errors import UserError
from sftdata.io import PARQUET_KEY, check_readable, extension
from sftdata.jsonvalues import jsonable_frame

# Columns that hold nested JSON; in CSV they are stored as JSON text.
NESTED_COLUMNS = ("conversations", "messages", "history", "tool_calls", "meta", "tools")
# Known columns whose nested nulls mean "absent" in a columnar file.
SPARSE_COLUMNS = ("conversations", "messages", "tools", "history")
BOM = b"\xef\xbb\xbf"


@dataclass
class RawRow:
    """One input row: where it was, what it decoded to, or why it did not decode."""

    location: int
    data: dict | None
    raw: str | None = None
    error: str | None = None


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


def json_rows(path: Path, data: bytes) -> Iterator[RawRow]:
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


def check_csv_header(path: Path) -> None:
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


def read_table(path: Path) -> pl.LazyFrame:
    """A Parquet, Arrow IPC or CSV file as a lazy frame (CSV: every column as text)."""
    if extension(path) == ".parquet":
        return pl.scan_parquet(path)
    if extension(path) == ".arrow":
        return pl.scan_ipc(path)
    check_csv_header(path)
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
    """Every row of a data file, in order; bad rows come back with an ``error`` code.

    Compressed files, Arrow streams, ``-`` and Hub ids are made local first
    (``sftdata.inputs.local_input``)."""
    from sftdata.inputs import local_input

    local = local_input(path)
    try:
        yield from _plain_rows(local.path)
    finally:
        local.close()


def _plain_rows(path: Path) -> Iterator[RawRow]:
    ext = extension(path)
    check_readable(path)
    try:
        if ext in (".json", ".jsonl"):
            data = path.read_bytes()
            rows = _jsonl_rows(data) if ext == ".jsonl" else json_rows(path, data)
            yield from rows
        else:
            info = parquet_info(path) if ext == ".parquet" else {}
            yield from _table_rows(read_table(path).collect(), True, info)
    except UserError:
        raise
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None

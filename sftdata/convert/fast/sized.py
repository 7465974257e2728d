"""The sized route: compact Alpaca JSON Lines, proven clean by their byte count.

The checked route (``fast.analyse_lines``) proves a line safe by looking at its raw
text: it splits the block into lines and counts the keys of each line. That costs as
much as decoding. Most large files are written compactly (polars, orjson, ``jq -c``,
``json.dumps`` with ``separators=(",", ":")`` and ``ensure_ascii=False``), and for them one
number replaces those per-line looks: the size of the block.

The argument. polars decodes the block (it rejects what is not strict JSON, raw control
characters in strings included). For a decoded row, let ``min(row)`` be the length of
the shortest text that decodes to it: ``{"k":"v",...}`` over its non-null known fields,
each value with only the escapes JSON requires (``\\" \\\\ \\n \\r \\t \\b \\f``, ``\\u00XX``
for other control characters). Every line is at least as long as ``min(row)`` of the row
polars read from it, as long as every value was a string: whitespace, an unknown or
duplicate key, a ``null``, an optional escape (``\\u00e9``, ``\\/``), a CR or a blank line
only add bytes. Values that were not strings are excluded row by row first (the checked
route's test for numbers, booleans, arrays and objects read as text), and so are texts
holding NUL (polars reads an escaped lone surrogate, 6 bytes, as NUL, whose shortest
escape is also 6 bytes). So if the block is exactly as long as the sum of ``min(row)``
plus its newlines, every line is minimal: it holds exactly the decoded fields, once
each, and nothing else. The per-record path then reads the same strings, and the row
converts exactly as the checked route would convert it.

``min(row)`` is not computed by scanning the texts for characters to escape (a regex
pass over every byte is as slow as decoding). polars' JSON writer escapes exactly the
required characters (``tests/formats/test_fast_sized.py`` checks every ASCII character
and a few others), so the output written for the block carries the escaped length of
every text: the input's length follows from the output's by per-row constants that
depend only on which keys a row has.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import polars as pl

from sftdata.colnames import col
from sftdata.convert.fast import plan as fast
from sftdata.formats import alpaca

# Bytes a present field adds around its value in a minimal line: ``"key":""`` and a comma
# (the braces of the line count as the comma of one field and 1 byte more).
_FIELD_FRAME = 6
BATCH_ROWS = 50_000  # rows per batch handed over by the streaming query
# Bytes the Alpaca join (instruction + JOIN + input) adds to the output's escaped text.
_JOIN_BYTES = len(json.dumps(alpaca.JOIN)) - 2


@dataclass(frozen=True)
class Framing:
    """Bytes the writer puts around the texts of an output row (newline excluded).

    ``base`` for a row with no optional column, plus ``extra[c]`` for each optional output
    column ``c`` the row has.
    """

    base: int
    extra: dict[str, int]


def framing(p: fast.Plan) -> Framing | None:
    """The writer's framing for this plan, measured; None if it is not additive per column."""

    def size(columns: tuple[str, ...]) -> int:
        turns = pl.concat_arr(fast.turn(p.to, 1, pl.lit("")), fast.turn(p.to, 2, pl.lit("")))
        part = pl.select(turns.alias("_turns"), *(pl.lit("").alias(c) for c in columns))
        buf = io.BytesIO()
        fast.output_frame(part, p.to, list(columns)).write_ndjson(buf)
        return len(buf.getvalue()) - 1

    optional = ("system", *p.extras)
    base = size(())
    extra = {c: size((c,)) - base for c in optional}
    if size(optional) != base + sum(extra.values()):
        return None
    return Framing(base, extra)


def _has_nul(fields: tuple[str, ...]) -> pl.Expr:
    """Rows with NUL in a text: the size argument does not cover them (see above)."""
    return pl.any_horizontal(pl.col(f).str.contains("\x00", literal=True) for f in fields).fill_null(False)


def _frame_bytes(fields: tuple[str, ...], shape: Framing) -> pl.Expr:
    """Per row: ``min(row)`` (newline excluded) minus the bytes of its output line's texts."""
    present = [pl.when(pl.col(f).is_not_null()).then(len(f.encode()) + _FIELD_FRAME).otherwise(0)
               for f in fields]
    in_output = {"system": pl.col("system").is_not_null() & (pl.col("system") != "")}
    in_output |= {c: col(c).is_not_null() for c in shape.extra if c != "system"}
    framing = [pl.when(has).then(shape.extra[c]).otherwise(0) for c, has in in_output.items()]
    joined = pl.when(pl.col("input").fill_null("") != "").then(_JOIN_BYTES).otherwise(0)
    total = 1 + pl.sum_horizontal(present) - shape.base - pl.sum_horizontal(framing) - joined
    return total.cast(pl.Int64)


def _query(source: Path | bytes, p: fast.Plan, shape: Framing) -> pl.LazyFrame:
    """``fast.analysed`` of every line, with the NUL flag and the framing bytes per row."""
    fields = (*fast.REQUIRED, *fast.OPTIONAL, *p.extras)
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    decoded = pl.scan_ndjson(data, schema={f: pl.String for f in fields})
    decoded = decoded.with_row_index("n", offset=1).with_columns(pl.lit(None, pl.String).alias("text"))
    keep = (_has_nul(fields).alias("_nul"), _frame_bytes(fields, shape).alias("_frame_bytes"))
    return fast.analysed(decoded, p, count_keys=False, keep=keep)


def convert(source: Path | bytes, p: fast.Plan, shape: Framing, out: BinaryIO,
            progress: Callable[[int], None] | None = None) -> int | None:
    """Write the output lines of ``source`` (a file or the bytes of whole lines) to ``out``.

    Returns the number of rows when the size of ``source`` proves every line clean;
    None otherwise (a line polars cannot decode, a row the value checks turn away, or a
    source longer than its minimal form), and then what was written to ``out`` is
    worthless: the caller discards it and takes the checked route.
    """
    start, rows, frame_bytes = out.tell(), 0, 0
    try:
        for batch in _query(source, p, shape).collect_batches(chunk_size=BATCH_ROWS):
            if not batch["_clean"].all() or batch["_nul"].any():
                return None
            frame_bytes += batch["_frame_bytes"].sum()
            rows += fast.write_rows_out(batch, [], p, out)
            if progress:
                progress(batch.height)
    except pl.exceptions.PolarsError:
        return None
    return rows if _proven(source, rows, frame_bytes, out.tell() - start) else None


def sink(source: Path, p: fast.Plan, shape: Framing, target: Path) -> int | None:
    """``convert`` for a file whose rows all come out as bare turns, written by polars.

    polars serialises the output on its own threads and writes ``target`` itself, which
    is faster than handing batches to Python; the price is one shape for every row, so a
    plan with extra columns is not for this function, and a row with a system prompt
    makes it return None like any failed proof.
    """
    if p.extras:
        return None
    query = _query(source, p, shape)
    write = query.select(fast.output_frame_columns(p.to)).sink_ndjson(target, lazy=True)
    proven = pl.col("_clean").all() & ~pl.col("_nul").any() & pl.col("system").is_null().all()
    stats = query.select(pl.len(), proven, pl.col("_frame_bytes").sum())
    try:
        rows, clean, frame_bytes = pl.collect_all([write, stats], engine="streaming")[1].row(0)
    except pl.exceptions.PolarsError:
        return None
    return rows if clean and _proven(source, rows, frame_bytes, target.stat().st_size) else None


def _proven(source: Path | bytes, rows: int, frame_bytes: int, written: int) -> bool:
    """The proof: ``source`` is exactly as long as the minimal lines of its ``rows`` rows,
    ``frame_bytes`` plus the ``written`` output bytes (see the module docstring)."""
    size, newline_missing = _size(source)
    return rows > 0 and size == frame_bytes + written - newline_missing


def _size(source: Path | bytes) -> tuple[int, bool]:
    """Bytes in ``source`` and whether its last line lacks a newline."""
    if isinstance(source, bytes):
        return len(source), not source.endswith(b"\n")
    with open(source, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(-1, os.SEEK_END)
        return size, size > 0 and f.read(1) != b"\n"

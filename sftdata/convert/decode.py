"""JSON text -> typed polars columns, with the proof of which rows were read exactly.

``decode(lines, shape)`` takes a frame of ``n`` (location) and ``text`` (one JSON object
per row) and returns ``n``, the shape's fields as columns, ``_proven`` (the ``Tally``
proof held) and ``text`` (kept for the rows not proven, null for the others). A block
polars cannot decode at all (bad JSON, an object where a string belongs, a line that
is not UTF-8) is split in halves until the rows it chokes on are alone; those come back
unproven with all fields null.
"""

from __future__ import annotations

import polars as pl

from sftdata.convert import jsontext as jt
from sftdata.convert.shapes import Field, dtype, has_json, tally

SMALLEST_SPLIT = 256  # below this many rows a block that fails to decode goes per-record
MAX_NUMBER_TEXT = 64  # longer number literals go to the reference path (huge integers)


def _json_columns(shape: Field) -> dict[str, pl.Expr]:
    return {f.name: pl.col("text").str.json_path_match(f"$.{f.name}") for f in shape.fields
            if f.kind == "json"}


def _query(lines: pl.LazyFrame, shape: Field) -> pl.LazyFrame:
    json_values = _json_columns(shape)
    decoded = pl.col("text").str.json_decode(dtype(shape))
    with_json = lines.with_columns(decoded.alias("_d"), *(e.alias(f"_j_{k}") for k, e in json_values.items()))
    refs = {k: pl.col(f"_j_{k}") for k in json_values}
    ok = jt.proven(pl.col("text"), tally(pl.col("_d"), shape, refs), has_json(shape))
    return (with_json.with_columns(ok.alias("_proven"))
            .with_columns(pl.when(pl.col("_proven")).then(None).otherwise(pl.col("text")).alias("text"))
            .unnest("_d")
            .rename({f"_j_{k}": k for k in json_values}))


def _unproven(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    """The decode columns for rows that all go to the reference path."""
    schema = {f.name: (pl.String if f.kind == "json" else dtype(f)) for f in shape.fields}
    return lines.select("n", "text", pl.lit(False).alias("_proven"),
                        *(pl.lit(None, dt).alias(k) for k, dt in schema.items()))


def _order(frame: pl.DataFrame, shape: Field) -> pl.DataFrame:
    return frame.select("n", "text", "_proven", *(f.name for f in shape.fields))


def decode(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    """See the module docstring; ``lines`` has ``n`` and ``text`` (null: not UTF-8)."""
    good = lines.filter(pl.col("text").is_not_null())
    parts = [_unproven(lines.filter(pl.col("text").is_null()), shape)] if good.height < lines.height else []
    parts.append(_split(good, shape))
    out = pl.concat([_order(p, shape) for p in parts])
    return out.sort("n") if len(parts) > 1 else out


def _split(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    try:
        return _query(lines.lazy(), shape).collect()
    except pl.exceptions.PolarsError:
        if lines.height <= SMALLEST_SPLIT:
            return _unproven(lines, shape)
        half = lines.height // 2
        return pl.concat([_order(_split(lines[:half], shape), shape),
                          _order(_split(lines[half:], shape), shape)])

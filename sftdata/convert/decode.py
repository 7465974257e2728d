"""JSON text -> typed polars columns, with the proof of which rows were read exactly.

``decode(lines, shape)`` takes a frame of ``ROW`` (location) and ``TEXT`` (one JSON
object per row) and adds ``DECODED`` (a struct of the shape's fields), a column per
JSON-kind field (``json_column``) and ``PROVEN`` (the ``Tally`` proof held). A block
polars cannot decode at all (bad JSON, an object where a string belongs) is split in
halves until the rows it chokes on are alone; those come back unproven, their fields
null. A row whose ``TEXT`` is null (not UTF-8) is unproven too.
"""

from __future__ import annotations

import polars as pl

from sftdata.convert import jsontext as jt
from sftdata.convert.shapes import DECODED, PROVEN, ROW, TEXT, Field, dtype, has_json, json_column, tally

SMALLEST_SPLIT = 256  # below this many rows a block that fails to decode goes per-record
MAX_NUMBER_TEXT = 64  # longer number literals go to the reference path (huge integers)


def _json_fields(shape: Field) -> list[str]:
    return [f.name for f in shape.fields if f.kind == "json"]


def _query(lines: pl.LazyFrame, shape: Field) -> pl.LazyFrame:
    text = pl.col(TEXT)
    json_values = {k: text.str.json_path_match(f"$.{k}") for k in _json_fields(shape)}
    refs = {k: pl.col(json_column(k)) for k in json_values}
    ok = jt.proven(text, tally(pl.col(DECODED), shape, refs), has_json(shape))
    return (lines.with_columns(text.str.json_decode(dtype(shape)).alias(DECODED),
                               *(e.alias(json_column(k)) for k, e in json_values.items()))
            .with_columns(ok.alias(PROVEN)))


def _unproven(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    """The decode columns for rows that all go to the reference path."""
    return lines.with_columns(pl.lit(None, dtype(shape)).alias(DECODED),
                              *(pl.lit(None, pl.String).alias(json_column(k)) for k in _json_fields(shape)),
                              pl.lit(False).alias(PROVEN))


def decode(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    """See the module docstring; ``lines`` has ``ROW`` and ``TEXT``, in order."""
    good = lines.filter(pl.col(TEXT).is_not_null())
    if good.height == lines.height:
        return _split(lines, shape)
    parts = [_unproven(lines.filter(pl.col(TEXT).is_null()), shape), _split(good, shape)]
    return pl.concat(parts).sort(ROW)


def _split(lines: pl.DataFrame, shape: Field) -> pl.DataFrame:
    try:
        return _query(lines.lazy(), shape).collect()
    except pl.exceptions.PolarsError:
        if lines.height <= SMALLEST_SPLIT:
            return _unproven(lines, shape)
        half = lines.height // 2
        return pl.concat([_split(lines[:half], shape), _split(lines[half:], shape)])

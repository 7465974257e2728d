"""How a value of any Arrow type becomes JSON: the one rule, for both conversion paths.

Columns a format does not define (they go to ``meta``) can be of any type a Parquet
or CSV file holds. JSON outputs need plain JSON, so before anything reads such a column
it is cast, recursively inside lists, arrays and structs, by this rule:

==================  ===========================================================
Arrow type          JSON
==================  ===========================================================
Date                ISO 8601 date string, ``"2024-01-31"``
Datetime            ISO 8601 string, ``"2024-01-31T12:00:00.000001"`` (``+00:00``
                    offset added when the column has a time zone)
Time                ISO 8601 time string, ``"12:00:00.5"``
Duration            ISO 8601 duration string, ``"PT1H2M3.5S"``
Decimal             its exact digits as a string, ``"12.50"`` (never a float)
Binary              standard base64 string (with padding)
Categorical, Enum   the string
Float32             the same number as Float64 (no decimal digits are invented)
Null, Object        null / not allowed (the row goes through the reference path)
others              as they are (strings, integers, floats, booleans, lists, structs)
==================  ===========================================================

A non-finite float (NaN, Infinity) has no JSON form: the row is a reject
(``non_finite_number``), never written as a bare ``NaN``.
"""

from __future__ import annotations

import polars as pl

from sftdata.colnames import col, struct_fields

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"


def _is_plain(dtype: pl.DataType) -> bool:
    """True for a type JSON holds as it is."""
    if dtype in (pl.String, pl.Boolean, pl.Float64, pl.Null) or dtype.is_integer():
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _is_plain(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_is_plain(f.dtype) for f in dtype.fields)
    return False


def jsonable(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``expr`` (of type ``dtype``) cast to JSON-ready types by the rule above."""
    if _is_plain(dtype):
        return expr
    if isinstance(dtype, pl.Datetime):
        fmt = DATETIME_FORMAT + ("%:z" if dtype.time_zone else "")
        return expr.dt.to_string(fmt)
    if isinstance(dtype, pl.Date):
        return expr.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Time):
        return expr.dt.to_string("%H:%M:%S%.f")
    if isinstance(dtype, pl.Duration):
        return expr.dt.to_string("iso")
    if isinstance(dtype, pl.Decimal) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return expr.cast(pl.String)
    if dtype == pl.Binary:
        return expr.bin.encode("base64")
    if dtype == pl.Float32:
        return expr.cast(pl.Float64)
    if isinstance(dtype, pl.Array):
        return jsonable(expr.arr.to_list(), pl.List(dtype.inner))
    if isinstance(dtype, pl.List):
        return expr.list.eval(jsonable(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.struct([jsonable(field, f.dtype).alias(f.name)
                          for f, field in zip(dtype.fields, struct_fields(expr, dtype))])
    raise TypeError(f"no JSON form for {dtype}")


def jsonable_frame(frame: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
    """``frame`` with ``columns`` (default: all) cast by the rule; a column of a type
    without a JSON form (Object) raises TypeError."""
    names = frame.columns if columns is None else columns
    exprs = [jsonable(col(c), frame.schema[c]).alias(c) for c in names
             if not _is_plain(frame.schema[c])]
    return frame.with_columns(exprs) if exprs else frame


def has_floats(dtype: pl.DataType) -> bool:
    """True when values of ``dtype`` can hold a float (so maybe NaN or Infinity)."""
    if dtype.is_float():
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return has_floats(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(has_floats(f.dtype) for f in dtype.fields)
    return False


def finite(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where every float inside the value is finite (null counts as finite)."""
    if dtype.is_float():
        return expr.is_finite().fill_null(True)
    if isinstance(dtype, (pl.List, pl.Array)) and has_floats(dtype.inner):
        inner = expr.arr.to_list() if isinstance(dtype, pl.Array) else expr
        return inner.list.eval(finite(pl.element(), dtype.inner)).list.all().fill_null(True)
    if isinstance(dtype, pl.Struct) and has_floats(dtype):
        return pl.all_horizontal([finite(field, f.dtype) for f, field
                                  in zip(dtype.fields, struct_fields(expr, dtype)) if has_floats(f.dtype)])
    return pl.lit(True)

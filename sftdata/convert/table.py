"""Parquet and CSV batches -> the columns the builders read (as ``build.prepare`` gives).

A table already has types, so nothing needs proving about them except that they are
the ones the format wants: a known column of another type (an Int64 ``output``, a
list ``content``) leaves its rows to the reference path, which rejects them with the
reason. Known nested columns held as JSON text (CSV, or Parquet written by other tools)
are decoded with the same proof as JSON Lines. Columns the format does not define go
to ``meta`` by ``sftdata.jsonvalues``' rule; a null there stays a null, as the
reference reader keeps it, while inside known nested columns a null means absent.
"""

from __future__ import annotations

import polars as pl

from sftdata.convert import build
from sftdata.convert.decode import decode
from sftdata.convert.jsontext import json_depth, json_object
from sftdata.convert.shapes import EXTRA, KNOWN, PROVEN, ROW, TEXT, Field, struct
from sftdata.colnames import col
from sftdata.jsonvalues import finite, jsonable
from sftdata.rawrows import NESTED_COLUMNS

_E = pl.element()
_DEPTH = 32


def json_value(expr: pl.Expr) -> pl.Expr:
    """The JSON text of any JSON-ready value (null: ``null``)."""
    return pl.struct(expr.alias("")).struct.json_encode().str.slice(4).str.head(-1)


def _depth(dtype: pl.DataType) -> int:
    if isinstance(dtype, (pl.List, pl.Array)):
        return 1 + _depth(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return 1 + max((_depth(f.dtype) for f in dtype.fields), default=0)
    return 0


def _native_element(item: Field, dtype: pl.DataType, extra_field: str | None) -> tuple[pl.Expr, pl.Expr]:
    """(uniform element, ok) for a native struct element of a list column."""
    e = _E.struct
    names = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
    ok = [_E.is_not_null()]
    fields = []
    for f in item.fields:
        if f.name not in names:
            fields.append(pl.lit(None, dtype=pl.String if f.kind in ("str", "num") else
                                 build.MESSAGE_DTYPE.fields[2].dtype if f.name == "tool_calls" else pl.String)
                          .alias(f.name))
            continue
        have = names[f.name]
        if f.kind == "str":
            ok.append(pl.lit(have == pl.String))
            fields.append(e.field(f.name).cast(pl.String, strict=False).alias(f.name))
        elif f.kind == "num":
            ok.append(pl.lit(have.is_numeric()))
            fields.append(e.field(f.name).cast(pl.String, strict=False).alias(f.name))
        elif f.kind == "struct":  # a function: its string fields
            sub = {x.name: x.dtype for x in have.fields} if isinstance(have, pl.Struct) else {}
            ok.append(pl.lit(all(sub.get(x.name) == pl.String for x in f.fields)
                             and set(sub) <= {x.name for x in f.fields}) | e.field(f.name).is_null())
            fields.append(pl.struct([(e.field(f.name).struct.field(x.name) if x.name in sub
                                      else pl.lit(None, dtype=pl.String)).cast(pl.String, strict=False)
                                     .alias(x.name) for x in f.fields]).alias(f.name))
        else:  # a list of structs (tool calls)
            inner_ok, inner = _native_list(e.field(f.name), f, have, extra_field)
            ok.append(inner_ok)
            fields.append(inner.alias(f.name))
    extras = [(name, dt) for name, dt in names.items() if item.sub(name) is None and name != extra_field]
    ok += [pl.lit(_depth(dt) == 0) for _, dt in extras]
    ok += [finite(e.field(name), dt) for name, dt in extras]
    pairs = [(name, pl.when(e.field(name).is_not_null()).then(json_value(jsonable(e.field(name), dt))))
             for name, dt in extras]
    extra = json_object(pairs)
    if extra_field and extra_field in names:
        given = e.field(extra_field)
        ok.append(pl.lit(names[extra_field] == pl.String) & (given.is_null() | given.str.starts_with("{")))
        ok.append(pl.lit(not extras))
        extra = given.cast(pl.String, strict=False)
    fields.append(extra.alias(EXTRA))
    return pl.all_horizontal(ok), pl.struct(fields)


def _native_list(column: pl.Expr, f: Field, dtype: pl.DataType, extra_field: str | None):
    """(ok, uniform list) for a native list-of-structs column."""
    if not isinstance(dtype, pl.List):
        return pl.lit(False), pl.lit(None)
    element_ok, element = _native_element(f.item, dtype.inner, extra_field)
    ok = column.is_null() | column.list.eval(element_ok.fill_null(False)).list.all()
    return ok, column.list.eval(element)


def _decoded_text(batch: pl.DataFrame, f: Field) -> pl.DataFrame:
    """A known nested column held as JSON text (the reference reader decodes text that
    starts with ``[`` or ``{``), decoded with the proof."""
    text = pl.col(f.name)
    lines = batch.select(ROW, pl.when(text.is_not_null())
                         .then(pl.lit(f'{{"{f.name}":') + text + pl.lit("}"))
                         .otherwise(pl.lit("{}")).alias(TEXT))
    shape = struct("", f)
    out = build.prepare(decode(lines, shape), shape)
    looks = batch.select(text.is_null() | text.str.contains(r"^[\[{]")).to_series()
    return out.select(ROW, (pl.col(PROVEN) & pl.lit(looks)).alias(PROVEN), f.name)


def _json_text_ok(batch: pl.DataFrame, name: str) -> list[pl.Expr]:
    """Checks on a column of JSON text spliced into the record as it is."""
    text = col(name)
    ok = [text.is_null() | text.str.json_path_match("$").is_not_null() | text.str.starts_with('"'),
          ~text.str.contains(r"\\u[dD][89a-fA-F]").fill_null(False)]
    values = batch[name].rename("value")  # Series methods address the series by its name too
    if values.is_not_null().any():
        ok.append(pl.lit(pl.Series(json_depth(values)) <= _DEPTH))
    return ok


def table_columns(batch: pl.DataFrame, fmt: str, info: dict, shape: Field | None = None) -> pl.DataFrame:
    """The uniform columns of a table batch with ``ROW``: see the module docstring."""
    known = shape or KNOWN[fmt]
    extra_field = info.get("message_extra")
    json_columns = set(info.get("json_columns") or ())
    schema = batch.schema
    ok, columns = [], []
    for f in known.fields:
        have = schema.get(f.name)
        if have is None:
            columns.append(pl.lit(None, dtype=pl.String if f.kind != "list" else
                                  (pl.List(pl.List(pl.String)) if f.name == "history" else pl.String))
                           .alias(f.name))
            continue
        if f.kind == "str" or f.kind == "json":
            if have != pl.String:
                ok.append(pl.col(f.name).is_null())
            elif f.kind == "json":
                ok += _json_text_ok(batch, f.name)
            columns.append(pl.col(f.name).cast(pl.String, strict=False))
        elif have == pl.String:  # JSON text of a nested column
            decoded = _decoded_text(batch, f)
            batch = batch.with_columns(decoded[f.name].alias(f"__sftdata_{f.name}__"),
                                       decoded[PROVEN].alias(f"__sftdata_ok_{f.name}__"))
            ok.append(pl.col(f"__sftdata_ok_{f.name}__"))
            columns.append(pl.col(f"__sftdata_{f.name}__").alias(f.name))
        elif f.item is not None and f.item.kind == "struct":
            list_ok, uniform = _native_list(pl.col(f.name), f, have, extra_field)
            ok.append(list_ok)
            columns.append(uniform.alias(f.name))
        else:  # history: a list of lists of strings
            ok.append(pl.lit(have == pl.List(pl.List(pl.String))))
            columns.append(pl.col(f.name) if have == pl.List(pl.List(pl.String))
                           else pl.lit(None, dtype=pl.List(pl.List(pl.String))).alias(f.name))
    extras = [c for c in batch.columns if known.sub(c) is None and not (c.startswith("__sftdata_") and c.endswith("__"))]
    pairs = []
    for name in extras:
        dtype = schema[name]
        if name in json_columns and dtype == pl.String:
            ok += _json_text_ok(batch, name)
            pairs.append((name, col(name).fill_null("null")))
            continue
        if dtype == pl.String and name in NESTED_COLUMNS:
            # The reference decodes JSON text in a column of a nested field's name even
            # when this format does not define it: such rows go its way.
            ok.append(~col(name).str.contains(r"^[\[{]").fill_null(False))
        try:
            value = jsonable(col(name), dtype)
        except TypeError:
            ok.append(pl.lit(False))
            continue
        ok.append(pl.lit(_depth(dtype) <= _DEPTH))
        ok.append(finite(col(name), dtype))
        pairs.append((name, json_value(value)))
    meta = json_object(pairs)
    given = pl.lit(None, dtype=pl.String)
    if "id" in extras and fmt != "canonical":
        dtype = schema["id"]
        if dtype == pl.String:
            given = pl.col("id")
        elif dtype.is_integer():
            given = pl.col("id").cast(pl.String)
    proven = pl.all_horizontal([pl.lit(True), *ok]).fill_null(False)
    return batch.select(ROW, proven.alias(PROVEN), *columns, meta.alias("_meta"), given.alias("_given_id"))

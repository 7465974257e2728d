"""The shape of each format's rows, for decoding JSON text into polars with a proof.

A ``Field`` says what a key holds: ``str`` (a string), ``num`` (a number or boolean,
kept as its JSON text), ``json`` (anything, kept as compact JSON text; top level only),
a ``list`` of one item field, or a ``struct`` of fields. Scalars are decoded as String
whatever their JSON type (the ``Tally`` proof tells a string from a number), so a
mistyped value never makes polars fail a whole block.

``row_shape(fmt, head)`` is the format's known fields plus the keys the first rows of
the file carry that the format does not define ("extras", which go to ``meta`` or to a
message's ``extra``), each with the kind the first rows show. Rows with other keys, or
with a value of another kind, fail the proof and take the reference path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from sftdata.convert.jsontext import Tally
from sftdata.records import HINTS_KEY

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EXTRA = "extra"  # the JSON-text field built for the extras of a struct (messages, calls)
# Working columns, named so that no column of the user's data can clash with them.
ROW = "__sftdata_row__"  # a row's location (line, index)
TEXT = "__sftdata_text__"  # its JSON text
DECODED = "__sftdata_decoded__"  # what polars decoded of it
PROVEN = "__sftdata_proven__"  # whether the proof held


def json_column(name: str) -> str:
    """The working column holding a JSON-kind field's text."""
    return f"__sftdata_json_{name}__"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # str | num | json | list | struct
    item: Field | None = None
    fields: tuple[Field, ...] = ()
    extra: bool = False  # a key the format does not define

    def sub(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def s(name: str) -> Field:
    return Field(name, "str")


def n(name: str) -> Field:
    return Field(name, "num")


def lst(name: str, item: Field) -> Field:
    return Field(name, "list", item=item)


def struct(name: str, *fields: Field) -> Field:
    return Field(name, "struct", fields=tuple(fields))


FUNCTION = struct("function", s("name"), s("arguments"))
TOOL_CALL = struct("", s("id"), s("type"), FUNCTION)
OPENAI_MESSAGE = struct("", s("role"), s("content"), s("name"), s("tool_call_id"), n("weight"),
                        n("loss_weight"), lst("tool_calls", TOOL_CALL))
SHAREGPT_TURN = struct("", s("from"), s("value"), n("weight"), n("loss_weight"))

KNOWN = {
    "alpaca": struct("", s("instruction"), s("input"), s("output"), s("system"),
                     lst("history", lst("", s("")))),
    "sharegpt": struct("", lst("conversations", SHAREGPT_TURN), s("system"), s("tools")),
    "openai": struct("", lst("messages", OPENAI_MESSAGE), Field("tools", "json")),
    "canonical": struct("", s("id"), lst("messages", OPENAI_MESSAGE), Field("tools", "json"),
                        s("source"), Field("meta", "json")),
}
# Where extras are collected: the row, and for each list of structs, its elements.
NESTED = {"sharegpt": {"conversations": ()}, "openai": {"messages": ("tool_calls",)}}


def _kind(value) -> str | None:
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bool, int, float)):
        return "num"
    if isinstance(value, (dict, list)):
        return "json"
    return None


def _extras(rows: list[dict], known: Field, allow_json: bool) -> tuple[Field, ...]:
    """Fields for the keys of ``rows`` that ``known`` lacks, when every row agrees on their
    kind (num text is kept as is, so only integers and booleans go nested)."""
    kinds: dict[str, set] = {}
    for row in rows:
        if isinstance(row, dict):
            for key, value in row.items():
                if (known.sub(key) is None and key != HINTS_KEY and _SIMPLE_KEY.fullmatch(key)
                        and not key.startswith("__sftdata_")):
                    kinds.setdefault(key, set()).add(_kind(value))
    out = []
    for key, found in kinds.items():
        if len(found) != 1 or None in found:
            continue
        kind = found.pop()
        if kind == "json" and not allow_json:
            continue
        if kind == "num" and allow_json:
            kind = "json"  # a number's exact JSON text (1.0 stays a float)
        out.append(Field(key, kind, extra=True))
    return tuple(out)


def _with_extras(known: Field, rows: list[dict], allow_json: bool) -> Field:
    return Field(known.name, known.kind, known.item, known.fields + _extras(rows, known, allow_json))


def row_shape(fmt: str, head: list[dict]) -> Field:
    """The row field of ``fmt`` with the extras the ``head`` rows show."""
    known = KNOWN[fmt]
    if fmt == "canonical":
        return known
    fields = list(_with_extras(known, head, allow_json=True).fields)
    for list_name, inner_lists in NESTED.get(fmt, {}).items():
        items = [x for row in head for x in (row.get(list_name) or []) if isinstance(row.get(list_name), list)]
        i = next(k for k, f in enumerate(fields) if f.name == list_name)
        element = _with_extras(fields[i].item, items, allow_json=False)
        sub_fields = list(element.fields)
        for inner in inner_lists:
            j = next(k for k, f in enumerate(sub_fields) if f.name == inner)
            inner_items = [c for x in items if isinstance(x, dict) and isinstance(x.get(inner), list)
                           for c in x[inner]]
            sub_fields[j] = lst(inner, _with_extras(sub_fields[j].item, inner_items, allow_json=False))
        fields[i] = lst(list_name, Field("", "struct", fields=tuple(sub_fields)))
    return Field("", "struct", fields=tuple(fields))


def dtype(f: Field) -> pl.DataType:
    """The polars dtype ``str.json_decode`` reads ``f`` into (json fields left out)."""
    if f.kind in ("str", "num"):
        return pl.String
    if f.kind == "list":
        return pl.List(dtype(f.item))
    return pl.Struct({x.name: dtype(x) for x in f.fields if x.kind != "json"})


def tally(value: pl.Expr, f: Field, json_values: dict[str, pl.Expr] | None = None) -> Tally:
    """What the decoded ``value`` of ``f`` promises its JSON text holds."""
    t = Tally()
    if f.kind == "str":
        t.string(value)
    elif f.kind == "list":
        t.container(value.is_not_null(), "list")
        t.merge(tally(pl.element(), f.item).summed_over(value))
    elif f.kind == "struct":
        t.container(value.is_not_null(), "struct")
        for x in f.fields:
            if x.kind == "json":
                text = (json_values or {})[x.name]
                t.key(text.is_not_null())
                t.json(text)
                continue
            sub = value.struct.field(x.name)
            t.key(sub.is_not_null())
            t.merge(tally(sub, x))
    return t


def has_json(f: Field) -> bool:
    return any(x.kind == "json" for x in f.fields)

"""Decoded rows of each format -> canonical rows, with polars expressions.

Each ``to_canonical_<format>`` takes the decoded columns of a batch (``decode`` or a
Parquet/CSV table) and returns the canonical columns plus ``_ok``: True where the row
is surely one the reference converter (``sftdata.formats``) turns into exactly these
columns without a reject. The rules are the converters' own, written as expressions;
where an expression would get complicated (tool calls in ShareGPT, ``tools``, a system
turn that is empty...) the row is simply not ``_ok`` and takes the reference path, so a
reject is only ever decided there.

The decoded frame has, for every list of structs (turns, messages, tool calls), a
JSON-text ``extra`` field in each element with the element's extra keys, and a
``_meta`` column with the row's extras as a JSON object text (null: none).
"""

from __future__ import annotations

import polars as pl

from sftdata import text as tx
from sftdata.convert.decode import MAX_NUMBER_TEXT
from sftdata.convert.jsontext import json_depth, json_object, json_scalar
from sftdata.convert.shapes import DECODED, EXTRA, PROVEN, ROW, Field, json_column
from sftdata.formats import alpaca, sharegpt
from sftdata.records import HINTS_KEY, MESSAGE_DTYPE, ROLES, TOOL_CALL_DTYPE

_E = pl.element()
_NONE = pl.lit(None, dtype=pl.String)


def message(role, content, weight=None, extra=None, tool_calls=None, name=None,
            tool_call_id=None) -> pl.Expr:
    """A canonical message struct (fields in ``MESSAGE_DTYPE`` order)."""
    lit = (lambda v, dt: v if isinstance(v, pl.Expr) else pl.lit(v, dtype=dt))
    return pl.struct(
        lit(role, pl.String).alias("role"), lit(content, pl.String).alias("content"),
        lit(tool_calls, MESSAGE_DTYPE.fields[2].dtype).alias("tool_calls"),
        lit(name, pl.String).alias("name"), lit(tool_call_id, pl.String).alias("tool_call_id"),
        lit(weight, pl.Float64).alias("weight"), lit(extra, pl.String).alias("extra"),
    )


def fixed_list(items: list[tuple[pl.Expr | None, pl.Expr]]) -> pl.Expr:
    """A list of messages from (condition, message) pairs: each message where its
    condition holds (None: always). Built as a fixed-size array and filtered, which is
    many times faster in polars than ``concat_list`` of structs."""
    parts = [m if cond is None else pl.when(cond.fill_null(False)).then(m) for cond, m in items]
    arr = pl.concat_arr(parts).arr.to_list()
    if all(cond is None for cond, _ in items):
        return arr
    return arr.list.eval(_E.filter(_E.struct.field("role").is_not_null()))


def prepend(lst: pl.Expr, items: list[tuple[pl.Expr | None, pl.Expr]], needed: bool) -> pl.Expr:
    """``fixed_list(items)`` followed by ``lst``; ``needed=False`` (no row of the batch
    has any of the items) skips the slow list concatenation."""
    return pl.concat_list([fixed_list(items), lst]) if needed else lst


def _all(lst: pl.Expr, cond: pl.Expr) -> pl.Expr:
    """True where ``cond`` (over ``pl.element()``) holds for every element (nulls fail)."""
    return lst.list.eval(cond.fill_null(False)).list.all()


def weight_of(w: pl.Expr, lw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(weight, ok) from the decoded ``weight`` / ``loss_weight`` texts: a finite number
    from one of them (both given: not ok, the reference decides)."""
    value = pl.coalesce(w, lw).cast(pl.Float64, strict=False)
    ok = (w.is_null() | lw.is_null()) & (pl.coalesce(w, lw).is_null() | value.is_finite().fill_null(False))
    return value, ok


def meta_with(meta: pl.Expr, key: str, value_json: pl.Expr) -> pl.Expr:
    """``meta`` (object text or null) with ``key`` appended where ``value_json`` is not null."""
    pair = pl.lit(f'"{key}":') + value_json
    return (pl.when(value_json.is_null()).then(meta)
            .when(meta.is_null()).then(pl.lit("{") + pair + pl.lit("}"))
            .otherwise(meta.str.head(-1) + pl.lit(",") + pair + pl.lit("}")))


def _finish(frame: pl.DataFrame, messages: pl.Expr, ok: pl.Expr, meta: pl.Expr,
            tools: pl.Expr | None = None, given_id: pl.Expr | None = None,
            source: pl.Expr | None = None, fact: pl.Expr | None = None) -> pl.DataFrame:
    return frame.select(
        ROW,
        (pl.col(PROVEN) & ok.fill_null(False)).alias("_ok"),
        (given_id if given_id is not None else pl.col("_given_id")).alias("id"),
        messages.alias("messages"),
        (tools if tools is not None else _NONE).alias("tools"),
        (source if source is not None else _NONE).alias("source"),
        meta.fill_null("{}").alias("meta"),
        (fact if fact is not None else _NONE).alias("_fact"),
    )


_INTEGER = r"^-?(?:0|[1-9][0-9]{0,40})$"
_LONG_DIGITS = r"[0-9]{16}"  # a number serde may have turned into a float: not proven
_JSON_DEPTH = 32  # deeper JSON-kind values take the reference path (which limits depth)


def _struct_list(f: Field) -> bool:
    return f.kind == "list" and f.item is not None and f.item.kind == "struct"


def _element_with_extra(item: Field) -> pl.Expr:
    """A list element rebuilt with its known fields and ``extra`` (its extras' JSON, or
    null), the lists of structs inside it rebuilt the same way."""
    e = _E.struct
    known = [e.field(f.name).list.eval(_element_with_extra(f.item)).alias(f.name) if _struct_list(f)
             else e.field(f.name).alias(f.name) for f in item.fields if not f.extra]
    pairs = [(f.name, json_scalar(e.field(f.name), f.kind)) for f in item.fields if f.extra]
    return pl.struct(*known, json_object(pairs).alias(EXTRA))


def _nested_numbers_ok(item: Field, value: pl.Expr) -> list[pl.Expr]:
    """Checks that nested number texts are short (a huge integer goes by reference)."""
    checks = []
    for f in item.fields:
        sub = value.struct.field(f.name)
        if f.extra and f.kind == "num":
            checks.append((sub.str.len_bytes() <= MAX_NUMBER_TEXT).fill_null(True))
        elif _struct_list(f):
            inner = _nested_numbers_ok(f.item, _E)
            if inner:
                checks.append(sub.is_null() | _all(sub, pl.all_horizontal(inner)))
    return checks


def prepare(decoded: pl.DataFrame, shape: Field) -> pl.DataFrame:
    """The decoded columns the builders read: ``ROW``, ``PROVEN`` (narrowed by the checks
    of JSON-kind and number texts), the known fields as columns (lists of structs with an
    ``extra`` field per element), ``_meta`` (the row's extras) and ``_given_id``."""

    def field(f: Field) -> pl.Expr:
        return pl.col(json_column(f.name)) if f.kind == "json" else pl.col(DECODED).struct.field(f.name)

    ok = [pl.col(PROVEN)]
    for f in shape.fields:
        if f.kind == "json":
            ok.append(~field(f).str.contains(_LONG_DIGITS).fill_null(False))
            texts = decoded[json_column(f.name)]
            if texts.is_not_null().any():
                ok.append(pl.lit(pl.Series(json_depth(texts)) <= _JSON_DEPTH))
        elif _struct_list(f):
            ok.extend(field(f).is_null() | _all(field(f), c) for c in _nested_numbers_ok(f.item, _E))
    columns = []
    for f in shape.fields:
        if f.extra:
            continue
        value = field(f).list.eval(_element_with_extra(f.item)) if _struct_list(f) else field(f)
        columns.append(value.alias(f.name))
    extras = [f for f in shape.fields if f.extra]
    meta = json_object([(f.name, json_scalar(field(f), f.kind)) for f in extras])
    id_field = next((f for f in extras if f.name == "id"), None)
    if id_field is None:
        given = _NONE
    elif id_field.kind == "str":
        given = field(id_field)
    else:  # an integer's text; a float or a boolean is not an id
        text = field(id_field)
        given = pl.when(text.str.contains(_INTEGER) & (text != "-0")).then(text)
    return decoded.select(ROW, pl.all_horizontal(ok).alias(PROVEN), *columns,
                          meta.alias("_meta"), given.alias("_given_id"))


def to_canonical_alpaca(d: pl.DataFrame) -> pl.DataFrame:
    instruction, output = pl.col("instruction"), pl.col("output")
    input_, system, history = pl.col("input").fill_null(""), pl.col("system"), pl.col("history")
    prompt = (pl.when(input_ != "").then(pl.concat_str([instruction, pl.lit(alpaca.JOIN), input_]))
              .otherwise(instruction))
    history_ok = history.is_null() | _all(history, (_E.list.len() == 2) & _all(_E, tx.has_text(_E)))
    last = [(system.is_not_null() & (system != ""), message("system", system)),
            (None, message("user", prompt)), (None, message("assistant", output))]
    if d["history"].is_null().all():
        messages = fixed_list(last)
    else:
        flat = history.list.eval(_E.explode()).fill_null([])
        turns = flat.list.eval(message(pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("user"))
                                       .otherwise(pl.lit("assistant")), _E))
        messages = pl.concat_list([fixed_list(last[:1]), turns, fixed_list(last[1:])])
    ok = (instruction.is_not_null() & output.is_not_null() & history_ok
          & tx.has_text(prompt) & tx.has_text(output))
    return _finish(d, messages, ok, pl.col("_meta"), fact=pl.col("input"))


def _speaker(value: pl.Expr) -> pl.Expr:
    return value.replace(sharegpt.ALIASES)


def to_canonical_sharegpt(d: pl.DataFrame) -> pl.DataFrame:
    conv, system = pl.col("conversations"), pl.col("system")
    t = _E.struct
    first = conv.list.first().struct
    system_turn = (_speaker(first.field("from")) == "system").fill_null(False)
    turns = pl.when(system_turn).then(conv.list.slice(1)).otherwise(conv)
    weight, weight_ok = weight_of(t.field("weight"), t.field("loss_weight"))
    speaker = _speaker(t.field("from"))
    position = pl.int_range(pl.len())
    turn_ok = (speaker.is_in(["human", "gpt", "observation"]) & t.field("value").is_not_null() & weight_ok
               & pl.when(position % 2 == 0).then(speaker.is_in(sharegpt.PROMPT_SIDE))
               .otherwise(speaker == "gpt")
               & pl.when(speaker == "observation").then(True).otherwise(tx.has_text(t.field("value"))))
    _, first_weight_ok = weight_of(first.field("weight"), first.field("loss_weight"))
    system_turn_ok = ~system_turn | ((system.is_null() | (system == ""))
                                     & (first.field("value") != "") & first_weight_ok)
    ok = (conv.list.len() > 0) & _all(turns, turn_ok) & (turns.list.len() % 2 == 0) & (turns.list.len() > 0) \
        & system_turn_ok & pl.col("tools").is_null()
    role = speaker.replace({"human": "user", "gpt": "assistant", "observation": "tool"})
    # A system turn stays in place (mapped to a system message); a system column is
    # put in front.
    role = pl.when(_speaker(t.field("from")) == "system").then(pl.lit("system")).otherwise(role)
    mapped = conv.list.eval(message(role, t.field("value"), weight, t.field("extra")))
    column = ~system_turn & system.is_not_null() & (system != "")
    messages = prepend(mapped, [(column, message("system", system))],
                       bool(d.select(column.any()).item()))
    meta = meta_with(pl.col("_meta"), HINTS_KEY, pl.when(system_turn).then(pl.lit('{"system_turn":true}')))
    return _finish(d, messages, ok, meta)


def _calls(calls: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(canonical tool calls, ok) of a message's decoded ``tool_calls``."""
    c = _E.struct
    f = c.field("function").struct
    call_ok = (c.field("function").is_not_null() & (f.field("name").str.len_bytes() > 0)
               & f.field("arguments").is_not_null()
               & (c.field("type").is_null() | (c.field("type") == "function")))
    built = calls.list.eval(pl.struct(
        c.field("id").alias("id"), pl.lit("function").alias("type"),
        pl.struct(f.field("name").alias("name"), f.field("arguments").alias("arguments")).alias("function"),
        c.field("extra").alias("extra"),
    ).cast(TOOL_CALL_DTYPE))
    return built, calls.is_null() | _all(calls, call_ok)


def _openai_messages(msgs: pl.Expr, with_extra: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """(canonical messages, ok) of decoded OpenAI ``messages`` (the ordering rules too)."""
    m = _E.struct
    role = m.field("role")
    calls, calls_ok = _calls(m.field("tool_calls"))
    n_calls = m.field("tool_calls").list.len().fill_null(0)
    weight, weight_ok = weight_of(m.field("weight"), m.field("loss_weight"))
    position = pl.int_range(pl.len())
    after_call = (role.shift(1) == "tool") | (n_calls.shift(1) > 0)
    message_ok = (
        role.is_in(list(ROLES)) & m.field("content").is_not_null() & calls_ok & weight_ok
        & ((n_calls == 0) | (role == "assistant"))
        & ((n_calls > 0) | ~role.is_in(["user", "assistant"]) | tx.has_text(m.field("content")))
        & ((role != "system") | (position == 0))
        & ((role != "tool") | after_call.fill_null(False))
    )
    last_ok = msgs.list.last().struct.field("role") == "assistant"
    ok = (msgs.list.len() > 0) & _all(msgs, message_ok) & last_ok
    built = msgs.list.eval(message(role, m.field("content"), weight,
                                   m.field("extra") if with_extra else None,
                                   calls, m.field("name"), m.field("tool_call_id")))
    return built, ok


def to_canonical_openai(d: pl.DataFrame) -> pl.DataFrame:
    messages, ok = _openai_messages(pl.col("messages"))
    ok = ok & pl.col("tools").is_null()
    return _finish(d, messages, ok, pl.col("_meta"))


def to_canonical_canonical(d: pl.DataFrame) -> pl.DataFrame:
    messages, ok = _openai_messages(pl.col("messages"), with_extra=False)
    meta = pl.col("meta")
    ok = (ok & pl.col("tools").is_null() & pl.col("id").is_not_null()
          & pl.col("source").is_not_null() & (pl.col("source") != "")
          & meta.is_not_null() & meta.str.starts_with("{"))
    return _finish(d, messages, ok, meta, given_id=pl.col("id"), source=pl.col("source"))


BUILDERS = {"alpaca": to_canonical_alpaca, "sharegpt": to_canonical_sharegpt,
            "openai": to_canonical_openai, "canonical": to_canonical_canonical}

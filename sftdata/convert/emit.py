"""Canonical rows -> output rows of each format, vectorised: JSON lines and table columns.

``json_lines(frame, to)`` returns one compact JSON text per row and ``ok``: True where
the row is surely one the reference writer (``from_canonical``) turns into that same
row without a reject. Rows that are not ``ok`` (ShareGPT function calls, format hints,
meta keys that might collide with the format's own fields, messages the target cannot
hold...) are written by the reference writer, which also decides every write reject.

``table_columns(frame, to)`` gives the same rows as typed columns for Parquet and CSV
(the format's own columns only; ``meta`` is spread by the writer).
"""

from __future__ import annotations

import polars as pl

from sftdata.convert.jsontext import json_string
from sftdata.records import HINTS_KEY

_E = pl.element()
_NONE = pl.lit(None, dtype=pl.String)
SYSTEM_TURN_HINT = f'"{HINTS_KEY}":{{"system_turn":true}}'
# Keys each writer sets itself: meta keys (and message extras) named like them take the
# reference path, which rejects a real collision (sftdata.formats.common.spread).
ROW_KEYS = {
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "sharegpt": ("conversations", "system", "tools"),
    "openai": ("messages", "tools"),
}
MESSAGE_KEYS = {"sharegpt": ("from", "value", "weight", "tool_calls"),
                "openai": ("role", "content", "tool_calls", "name", "tool_call_id", "weight")}


def _names_any(text: pl.Expr, keys) -> pl.Expr:
    """True where JSON object text may have one of ``keys`` (conservative: any depth)."""
    alternatives = "|".join(keys)
    return text.str.contains(f'"(?:{alternatives})"\\s*:').fill_null(False)


def _spread(obj: pl.Expr) -> pl.Expr:
    """JSON object text as ``,<its members>`` (empty for ``{}`` or null), to append."""
    inner = obj.str.slice(1).str.head(-1)
    return pl.when(obj.is_not_null() & (inner != "")).then(pl.lit(",") + inner).otherwise(pl.lit(""))


def _opt(key: str, value: pl.Expr, value_json: pl.Expr | None = None) -> pl.Expr:
    """``,"key":<json>`` where ``value`` is not null, else empty."""
    text = value_json if value_json is not None else json_string(value)
    return pl.when(value.is_not_null()).then(pl.lit(f',"{key}":') + text).otherwise(pl.lit(""))


def _number(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String)


def _join(items: pl.Expr) -> pl.Expr:
    return pl.lit("[") + items.list.join(",") + pl.lit("]")


def _openai_order_ok(messages: pl.Expr) -> pl.Expr:
    """``sftdata.formats.openai.check_order`` as an expression."""
    m = _E.struct
    role = m.field("role")
    calls = m.field("tool_calls").list.len().fill_null(0)
    position = pl.int_range(pl.len())
    after_call = (role.shift(1) == "tool") | (calls.shift(1) > 0)
    each = ((role != "system") | (position == 0)) & ((role != "tool") | after_call.fill_null(False))
    last = messages.list.last().struct.field("role") == "assistant"
    return (messages.list.len() > 0) & messages.list.eval(each.fill_null(False)).list.all() & last


def _call_json(with_null_id: bool) -> pl.Expr:
    c = _E.struct
    f = c.field("function").struct
    head = (pl.lit('{"id":') + json_string(c.field("id")) + pl.lit(",")) if with_null_id else \
        pl.when(c.field("id").is_not_null()).then(pl.lit('{"id":') + json_string(c.field("id")) + pl.lit(",")) \
        .otherwise(pl.lit("{"))
    return pl.concat_str([
        head, pl.lit('"type":"function","function":{"name":'), json_string(f.field("name")),
        pl.lit(',"arguments":'), json_string(f.field("arguments")), pl.lit("}"),
        _extra_member(c.field("extra"), as_object=with_null_id), pl.lit("}"),
    ])


def _extra_member(extra: pl.Expr, as_object: bool) -> pl.Expr:
    """A message's (or call's) extras: as an ``extra`` object (canonical) or spread."""
    if as_object:
        return pl.when(extra.is_not_null()).then(pl.lit(',"extra":') + extra).otherwise(pl.lit(""))
    return _spread(extra)


def _message_json(canonical: bool) -> pl.Expr:
    m = _E.struct
    calls = m.field("tool_calls")
    calls_json = pl.when(calls.is_not_null()).then(
        pl.lit(',"tool_calls":') + _join(calls.list.eval(_call_json(canonical)))).otherwise(pl.lit(""))
    return pl.concat_str([
        pl.lit('{"role":'), json_string(m.field("role")), pl.lit(',"content":'), json_string(m.field("content")),
        calls_json, _opt("name", m.field("name")), _opt("tool_call_id", m.field("tool_call_id")),
        _opt("weight", _weight(m, canonical), _number(m.field("weight"))),
        _extra_member(m.field("extra"), as_object=canonical), pl.lit("}"),
    ])


def _weight(m, keep_all: bool) -> pl.Expr:
    """A message's weight: all of them in canonical records, else ``informative_weight``."""
    return m.field("weight") if keep_all else informative_weight(m)


def informative_weight(m) -> pl.Expr:
    """``sftdata.formats.common.informative_weight`` of a message struct: the weight where
    it differs from its role's default (assistant 1, others 0), else null."""
    default = pl.when(m.field("role") == "assistant").then(1.0).otherwise(0.0)
    return pl.when(m.field("weight") != default).then(m.field("weight"))


def _messages_have(messages: pl.Expr, cond: pl.Expr) -> pl.Expr:
    return messages.list.eval(cond.fill_null(False)).list.any().fill_null(False)


def _openai(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    messages, meta = pl.col("messages"), pl.col("meta")
    e = _E.struct
    extras_collide = _messages_have(messages, _names_any(e.field("extra"), MESSAGE_KEYS["openai"])
                                    | e.field("tool_calls").list.eval(
                                        _names_any(_E.struct.field("extra"), ("id", "type", "function"))
                                    ).list.any())
    # Tools are rewritten in OpenAI's shape per tool: those rows take the reference path.
    ok = (_openai_order_ok(messages) & ~_names_any(meta, (*ROW_KEYS["openai"], HINTS_KEY))
          & ~extras_collide & pl.col("tools").is_null())
    line = pl.concat_str([
        pl.lit('{"messages":'), _join(messages.list.eval(_message_json(False))), _spread(meta), pl.lit("}"),
    ])
    return line, ok


def _canonical(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    line = pl.concat_str([
        pl.lit('{"id":'), json_string(pl.col("id")), pl.lit(',"messages":'),
        _join(pl.col("messages").list.eval(_message_json(True))),
        pl.lit(',"tools":'), pl.col("tools").fill_null("null"), pl.lit(',"source":'),
        json_string(pl.col("source").fill_null("")), pl.lit(',"meta":'), pl.col("meta").fill_null("{}"),
        pl.lit("}"),
    ])
    return line, pl.lit(True)


def _plain_chat(messages: pl.Expr, allow_tool: bool) -> pl.Expr:
    """Messages without tool calls, names or call ids, that alternate user (or, with
    ``allow_tool``, tool) then assistant after an optional leading system message, and
    end with an assistant message."""
    m = _E.struct
    role = m.field("role")
    first_system = messages.list.first().struct.field("role") == "system"
    k = pl.int_range(pl.len()) - first_system_offset()
    prompt_roles = ["user", "tool"] if allow_tool else ["user"]
    each = (m.field("tool_calls").is_null() & m.field("name").is_null() & m.field("tool_call_id").is_null()
            & pl.when(role == "system").then(pl.int_range(pl.len()) == 0)
            .when(k % 2 == 0).then(role.is_in(prompt_roles)).otherwise(role == "assistant"))
    body_len = messages.list.len() - first_system.cast(pl.Int64)
    return ((body_len > 0) & (body_len % 2 == 0)
            & messages.list.eval(each.fill_null(False)).list.all())


def first_system_offset() -> pl.Expr:
    """Inside ``list.eval``: 1 when the list starts with a system message, else 0."""
    return (_E.struct.field("role").first() == "system").cast(pl.Int64)


def _sharegpt(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    messages, meta = pl.col("messages"), pl.col("meta")
    m = _E.struct
    hint = meta.str.contains(r'(?:^\{|,)"_sftdata":\{"system_turn":true\}\}$').fill_null(False)
    plain_meta = pl.when(hint).then(
        meta.str.replace(r'(?:,)?"_sftdata":\{"system_turn":true\}\}$', "}")).otherwise(meta)
    first = messages.list.first().struct
    has_system = first.field("role") == "system"
    column_system = has_system & ~hint
    system_ok = ~column_system | (first.field("weight").fill_null(0.0).eq(0.0) & first.field("extra").is_null())
    role = m.field("role")
    speaker = role.replace({"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"})
    turn = pl.concat_str([
        pl.lit('{"from":'), json_string(speaker), pl.lit(',"value":'), json_string(m.field("content")),
        _opt("weight", _weight(m, False), _number(m.field("weight"))), _spread(m.field("extra")), pl.lit("}"),
    ])
    turns = pl.when(column_system).then(messages.list.slice(1)).otherwise(messages).list.eval(turn)
    extras_collide = _messages_have(messages, _names_any(m.field("extra"), MESSAGE_KEYS["sharegpt"]))
    ok = (_plain_chat(messages, allow_tool=True) & pl.col("tools").is_null() & system_ok & ~extras_collide
          & ~_names_any(plain_meta, (*ROW_KEYS["sharegpt"], HINTS_KEY)))
    line = pl.concat_str([
        pl.lit('{"conversations":'), _join(turns),
        pl.lit(',"system":'), pl.when(column_system).then(json_string(first.field("content")))
        .otherwise(pl.lit('""')), pl.lit(',"tools":""'),
        _spread(plain_meta), pl.lit("}"),
    ])
    return line, ok


def _alpaca(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    messages, meta = pl.col("messages"), pl.col("meta")
    m = _E.struct
    first = messages.list.first().struct
    has_system = first.field("role") == "system"
    body = pl.when(has_system).then(messages.list.slice(1)).otherwise(messages)
    weights_ok = messages.list.eval(
        m.field("weight").is_null()
        | (m.field("weight") == pl.when(m.field("role") == "assistant").then(1.0).otherwise(0.0))
    ).list.all()
    extra_free = ~_messages_have(messages, m.field("extra").is_not_null())
    ok = (_plain_chat(messages, allow_tool=False) & pl.col("tools").is_null() & weights_ok & extra_free
          & ~_names_any(meta, (*ROW_KEYS["alpaca"], HINTS_KEY)))
    contents = body.list.eval(m.field("content"))
    n = contents.list.len()
    hist_text = _history_json(contents.list.head(n - 2))
    system = first.field("content")
    line = pl.concat_str([
        pl.lit('{"instruction":'), json_string(contents.list.get(-2, null_on_oob=True)),
        pl.lit(',"input":"","output":'), json_string(contents.list.last()),
        pl.lit(',"system":'), pl.when(has_system).then(json_string(system)).otherwise(pl.lit('""')),
        pl.lit(',"history":'), pl.when(n > 2).then(hist_text).otherwise(pl.lit("[]")),
        _spread(meta), pl.lit("}"),
    ])
    return line, ok


def _history_json(pairs: pl.Expr) -> pl.Expr:
    """``[[u,a],[u,a]...]`` of a flat list of alternating user/assistant contents."""
    i = pl.int_range(pl.len())
    piece = (pl.when(i == 0).then(pl.lit("[[")).when(i % 2 == 0).then(pl.lit(",[")).otherwise(pl.lit(","))
             + json_string(_E) + pl.when(i % 2 == 1).then(pl.lit("]")).otherwise(pl.lit("")))
    return pairs.list.eval(piece).list.join("") + pl.lit("]")


def _llamafactory_v1(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """Plain conversations (no tool calls, tools, names or message extras) vectorised;
    the rest by the reference writer."""
    messages, meta = pl.col("messages"), pl.col("meta")
    m = _E.struct
    default = pl.when(m.field("role") == "assistant").then(1.0).otherwise(0.0)
    message = pl.concat_str([
        pl.lit('{"role":'), json_string(m.field("role")), pl.lit(',"content":[{"type":"text","value":'),
        json_string(m.field("content")), pl.lit('}],"loss_weight":'),
        _number(m.field("weight").fill_null(default)), pl.lit("}"),
    ])
    plain = ~_messages_have(messages, m.field("tool_calls").is_not_null() | m.field("name").is_not_null()
                            | m.field("tool_call_id").is_not_null() | m.field("extra").is_not_null())
    ok = (_openai_order_ok(messages) & plain & pl.col("tools").is_null()
          & ~_names_any(meta, (*ROW_KEYS["openai"], HINTS_KEY)))
    line = pl.concat_str([pl.lit('{"messages":'), _join(messages.list.eval(message)), _spread(meta), pl.lit("}")])
    return line, ok


def _by_reference(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """Every row by the reference writer (``prompt_completion``: a split per record)."""
    none = pl.col("id").is_null() & pl.col("id").is_not_null()  # False, one per row
    return pl.when(none).then(pl.col("id")), none


EMITTERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "openai": _openai, "canonical": _canonical,
            "llamafactory_v1": _llamafactory_v1, "prompt_completion": _by_reference}
# Formats written to JSON / JSON Lines only (their nested parts have no table layout yet).
JSON_ONLY = ("llamafactory_v1", "prompt_completion")


def json_lines(frame: pl.DataFrame, to: str) -> pl.DataFrame:
    """``line`` (JSON text of each row in format ``to``, null where not ``ok``) and ``ok``."""
    if frame.height == 0:
        return pl.DataFrame(schema={"line": pl.String, "ok": pl.Boolean})
    line, ok = EMITTERS[to](frame)
    out = frame.select(ok.fill_null(False).alias("ok"), line.alias("line"))
    return out.select(pl.when(pl.col("ok")).then(pl.col("line")).alias("line"), "ok")

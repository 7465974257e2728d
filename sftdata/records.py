"""The canonical record: the one shape every stage of sftdata reads and writes.

A record is a plain dict at the edges and a row of a polars DataFrame inside a stage::

    {"id": str, "messages": [Message...], "tools": [spec...] | None,
     "source": str, "meta": {...}}

Alpaca, ShareGPT and OpenAI ``messages`` exist only in ``sftdata.formats`` (read and
write). The pydantic models here validate records at the edges and generate the JSON
Schemas in ``schemas/`` (``sftdata schemas``); ``FRAME_SCHEMA`` is the DataFrame layout.

In the frame, ``tools``, ``meta`` and each message's (and tool call's) ``extra`` are JSON
text: they hold arbitrary nested JSON (function specs, whatever extra columns, message
keys or tool-call keys the input carried) that polars structs cannot hold without
forcing one schema on every row. ``extra`` is null when there is nothing extra.

A message's ``extra`` keeps every key the input's message (or ShareGPT turn) had that
sftdata does not model (``reasoning_content``, ``id``, ``timestamp``, ``refusal``...);
writers put those keys back on the message. A tool call's ``extra`` does the same for
its keys (``index``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal

import polars as pl
import xxhash
from pydantic import BaseModel, ConfigDict, Field

ROLES = ("system", "user", "assistant", "tool")
Role = Literal["system", "user", "assistant", "tool"]

# Keys of ``meta`` under this name are sftdata's own format hints (e.g. that a ShareGPT
# system prompt came as a turn rather than a column); writers never emit them as fields.
HINTS_KEY = "_sftdata"


class FunctionCall(BaseModel):
    """The function an assistant asks to call; ``arguments`` is a JSON-encoded string."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: str = Field(description="JSON-encoded arguments, as in the OpenAI API.")


class ToolCall(BaseModel):
    """One tool call made by an assistant turn (OpenAI's shape)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall
    extra: dict[str, Any] | None = Field(
        default=None, description="The input's other keys of this call (e.g. `index`), kept as is."
    )


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="Tool calls made by an assistant turn."
    )
    name: str | None = Field(default=None, description="Optional participant or tool name.")
    tool_call_id: str | None = Field(
        default=None, description="For a tool turn: the id of the call it answers."
    )
    weight: float | None = Field(
        default=None, description="Per-message loss weight (0 = do not train on this turn)."
    )
    extra: dict[str, Any] | None = Field(
        default=None,
        description="The input message's keys sftdata does not model (e.g. `reasoning_content`, "
        "`id`, `timestamp`), kept as is and written back on the message.",
    )


class Record(BaseModel):
    """The canonical record that flows through every stage."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Stable id: the input's own id, else a hash of the messages.")
    messages: list[Message] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="JSON-schema function specs available to the model."
    )
    source: str = Field(description="The input file or generator that produced the record.")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Everything else the input carried, kept as is."
    )


FUNCTION_DTYPE = pl.Struct({"name": pl.String, "arguments": pl.String})
TOOL_CALL_DTYPE = pl.Struct(
    {"id": pl.String, "type": pl.String, "function": FUNCTION_DTYPE, "extra": pl.String}
)
MESSAGE_DTYPE = pl.Struct(
    {
        "role": pl.String,
        "content": pl.String,
        "tool_calls": pl.List(TOOL_CALL_DTYPE),
        "name": pl.String,
        "tool_call_id": pl.String,
        "weight": pl.Float64,
        "extra": pl.String,  # JSON text of an object, or null
    }
)
FRAME_SCHEMA = pl.Schema(
    {
        "id": pl.String,
        "messages": pl.List(MESSAGE_DTYPE),
        "tools": pl.String,  # JSON text or null
        "source": pl.String,
        "meta": pl.String,  # JSON text of a dict
    }
)
_OPTIONAL_MESSAGE_KEYS = ("tool_calls", "name", "tool_call_id", "weight", "extra")


# Separators of the id text: between messages, between a message's fields, before each
# tool call, and before the tools.
_MSG, _FIELD, _CALL, _TOOLS = "\x1d", "\x1f", "\x1e", "\x1c"


def id_text(messages: list[dict], tools: list | None = None) -> str:
    """The text a record id hashes (the definition, also built by ``sftdata.convert.ids``
    for whole frames): the messages joined by U+001D, each its ``role``, U+001F and its
    content with the whitespace ``str.strip`` removes taken off both ends, then for each
    tool call U+001E, the function name, U+001F and the arguments; then, when the record
    has tools, U+001C and their JSON with sorted keys and no spaces. Names, weights,
    tool-call ids and ``extra`` keys do not enter."""
    parts = []
    for m in messages:
        calls = "".join(f"{_CALL}{c['function']['name']}{_FIELD}{c['function']['arguments']}"
                        for c in m.get("tool_calls") or [])
        parts.append(f"{m['role']}{_FIELD}{(m.get('content') or '').strip()}{calls}")
    text = _MSG.join(parts)
    if tools:
        text += _TOOLS + json.dumps(tools, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text


def hash_id(text: str | bytes) -> str:
    """16 hex digits: XXH3-64 (seed 0) of the UTF-8 text. XXH3 is a fixed algorithm, so
    ids are the same in every version of sftdata and of its dependencies."""
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8") if isinstance(text, str) else text)


def record_id(messages: list[dict], tools: list | None = None) -> str:
    """A stable 16-hex-digit id from the messages (``hash_id(id_text(...))``): the same in
    every version and on both conversion paths; whitespace at the ends is ignored.

    >>> record_id([{"role": "user", "content": " hi "}]) == record_id(
    ...     [{"role": "user", "content": "hi"}])
    True
    >>> record_id([{"role": "user", "content": "hi"}])
    '890061fbf35c9d48'
    """
    return hash_id(id_text(messages, tools))


def _clean_call(call: dict) -> dict:
    out = {"id": call.get("id"), "type": call.get("type") or "function",
           "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}
    if call.get("extra"):
        out["extra"] = call["extra"]
    return out


def clean_message(message: dict) -> dict:
    """Drop optional keys that are None, so dicts compare equal however they were built
    (an empty ``extra`` counts as none; an empty ``tool_calls`` list is kept)."""
    out = {"role": message["role"], "content": message["content"]}
    for key in _OPTIONAL_MESSAGE_KEYS:
        value = message.get(key)
        if value is None or (key == "extra" and not value):
            continue
        if key == "tool_calls":
            value = [_clean_call(c) for c in value]
        out[key] = value
    return out


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _frame_message(message: dict) -> dict:
    """A message dict with its ``extra`` (and its calls') as JSON text, for the frame."""
    out = {**message, "extra": _json_text(message.get("extra") or None)}
    if message.get("tool_calls"):
        out["tool_calls"] = [{**c, "extra": _json_text(c.get("extra") or None)}
                             for c in message["tool_calls"]]
    return out


def frame_from_records(records: Iterable[dict]) -> pl.DataFrame:
    """Build the stage DataFrame from canonical record dicts."""
    rows = [
        {
            "id": r["id"],
            "messages": [_frame_message(m) for m in r["messages"]],
            "tools": _json_text(r.get("tools")),
            "source": r.get("source") or "",
            "meta": _json_text(r.get("meta") or {}),
        }
        for r in records
    ]
    return pl.DataFrame(rows, schema=FRAME_SCHEMA)


def _record_message(message: dict) -> dict:
    if message.get("extra") is not None:
        message["extra"] = json.loads(message["extra"])
    for call in message.get("tool_calls") or []:
        if call.get("extra") is not None:
            call["extra"] = json.loads(call["extra"])
    return clean_message(message)


def records_from_frame(frame: pl.DataFrame) -> list[dict]:
    """Turn stage DataFrame rows back into canonical record dicts (extra columns ignored)."""
    out = []
    for row in frame.select(list(FRAME_SCHEMA.names())).iter_rows(named=True):
        out.append(
            {
                "id": row["id"],
                "messages": [_record_message(m) for m in row["messages"]],
                "tools": None if row["tools"] is None else json.loads(row["tools"]),
                "source": row["source"],
                "meta": json.loads(row["meta"]) if row["meta"] else {},
            }
        )
    return out


def empty_frame() -> pl.DataFrame:
    """A frame with the canonical columns and no rows."""
    return pl.DataFrame(schema=FRAME_SCHEMA)


def text_of(messages: list[dict], role: str) -> str:
    """All contents of one role joined by newlines (the "instruction" or "response" view)."""
    return "\n".join(m["content"] for m in messages if m["role"] == role)

"""The canonical record: the one shape every stage of sftdata reads and writes.

A record is a plain dict at the edges and a row of a polars DataFrame inside a stage::

    {"id": str, "messages": [Message...], "tools": [spec...] | None,
     "source": str, "meta": {...}}

Alpaca, ShareGPT and OpenAI ``messages`` exist only in ``sftdata.formats`` (read and
write). The pydantic models here validate records at the edges and generate the JSON
Schemas in ``schemas/`` (``sftdata schemas``); ``FRAME_SCHEMA`` is the DataFrame layout.

In the frame, ``tools`` and ``meta`` are JSON strings: both hold arbitrary nested JSON
(function specs, whatever extra columns the input carried) that polars structs cannot
hold without forcing one schema on every row.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Literal

import polars as pl
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


_FUNCTION = pl.Struct({"name": pl.String, "arguments": pl.String})
_TOOL_CALL = pl.Struct({"id": pl.String, "type": pl.String, "function": _FUNCTION})
MESSAGE_DTYPE = pl.Struct(
    {
        "role": pl.String,
        "content": pl.String,
        "tool_calls": pl.List(_TOOL_CALL),
        "name": pl.String,
        "tool_call_id": pl.String,
        "weight": pl.Float64,
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
_OPTIONAL_MESSAGE_KEYS = ("tool_calls", "name", "tool_call_id", "weight")


def record_id(messages: list[dict], tools: list | None = None) -> str:
    """A stable 16-hex-digit id from the messages (whitespace at the ends ignored).

    >>> record_id([{"role": "user", "content": " hi "}]) == record_id(
    ...     [{"role": "user", "content": "hi"}])
    True
    """
    norm = [
        [m["role"], (m.get("content") or "").strip(), m.get("tool_calls") or None]
        for m in messages
    ]
    blob = json.dumps([norm, tools or None], ensure_ascii=False, sort_keys=True)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=8).hexdigest()


def clean_message(message: dict) -> dict:
    """Drop optional keys that are None, so dicts compare equal however they were built."""
    out = {"role": message["role"], "content": message["content"]}
    for key in _OPTIONAL_MESSAGE_KEYS:
        value = message.get(key)
        if value is not None:
            if key == "tool_calls":
                value = [
                    {"id": c.get("id"), "type": c.get("type") or "function",
                     "function": {"name": c["function"]["name"],
                                  "arguments": c["function"]["arguments"]}}
                    for c in value
                ]
            out[key] = value
    return out


def frame_from_records(records: Iterable[dict]) -> pl.DataFrame:
    """Build the stage DataFrame from canonical record dicts."""
    rows = [
        {
            "id": r["id"],
            "messages": r["messages"],
            "tools": None if r.get("tools") is None else json.dumps(r["tools"], ensure_ascii=False),
            "source": r.get("source") or "",
            "meta": json.dumps(r.get("meta") or {}, ensure_ascii=False),
        }
        for r in records
    ]
    return pl.DataFrame(rows, schema=FRAME_SCHEMA)


def records_from_frame(frame: pl.DataFrame) -> list[dict]:
    """Turn stage DataFrame rows back into canonical record dicts (extra columns ignored)."""
    out = []
    for row in frame.select(list(FRAME_SCHEMA.names())).iter_rows(named=True):
        out.append(
            {
                "id": row["id"],
                "messages": [clean_message(m) for m in row["messages"]],
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

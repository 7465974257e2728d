"""OpenAI chat ``messages``: role/content, ``tool_calls``, ``tool`` turns, optional ``tools``.

``content`` may be a string or a list of text parts (``{"type": "text", "text": ...}``;
``"value"`` is accepted for ``"text"``); parts are joined into one string, and a
non-text part is rejected as ``unsupported_content:<type>``. ``weight`` (OpenAI
fine-tuning) and ``loss_weight`` become the message's ``weight``. Every other key of a
message (``reasoning_content``, ``refusal``, ``id``...) and of a tool call (``index``)
is kept in its ``extra`` and written back in place. Written in OpenAI's shape: each tool
as ``{"type": "function", "function": {...}}`` (bare specs are read too), and a
``weight`` only where it differs from the role's default (assistant 1, others 0).
The rules checked: a
system message only first, a tool message only after a tool-calling assistant turn
(or another tool message), at least one assistant turn, and the last turn an
assistant one.

>>> row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
...                     {"role": "assistant", "content": "hello", "weight": 1}]}
>>> from_canonical(to_canonical(row))["messages"][0]
{'role': 'user', 'content': 'hi'}
"""

from __future__ import annotations

import json

from sftdata.errors import RecordError
from sftdata.formats.common import (
    bare_tool,
    check_value,
    extra_fields,
    informative_weight,
    make_tool_call,
    openai_tool,
    parse_tools,
    require_content,
    require_list,
    spread,
    spread_meta,
    weight_of,
)
from sftdata.records import ROLES, clean_message

FIELDS = ("messages", "tools")
MESSAGE_KEYS = ("role", "content", "tool_calls", "name", "tool_call_id")
CALL_KEYS = ("id", "type", "function")


def _part_calls(message: dict) -> list[dict]:
    """LLaMA-Factory v1's ``tool_call`` content parts (``{"name", "arguments"}`` JSON) as
    OpenAI tool calls."""
    content = message.get("content")
    calls = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "tool_call":
            try:
                value = json.loads(part.get("value", part.get("text")))
            except (TypeError, json.JSONDecodeError):
                raise RecordError("bad_tool_call") from None
            if not isinstance(value, dict):
                raise RecordError("bad_tool_call")
            calls.append({"type": "function", "function": {"name": value.get("name"),
                                                           "arguments": value.get("arguments")}})
    return calls


def _content(message: dict) -> str:
    content = message.get("content")
    if content is None:
        if message.get("tool_calls"):
            return ""
        raise RecordError("missing_field:content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RecordError("not_a_string:content")
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RecordError("bad_content_part")
        if part.get("type") == "tool_call":
            continue  # read by _part_calls
        if part.get("type", "text") != "text":
            raise RecordError(f"unsupported_content:{part.get('type')}")
        text = part.get("text", part.get("value"))
        if not isinstance(text, str):
            raise RecordError("bad_content_part")
        texts.append(text)
    return "".join(texts)


def _tool_calls(value) -> list[dict] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError("bad_tool_call")
    calls = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or set(function) - {"name", "arguments"}:
            raise RecordError("bad_tool_call")
        if call.get("type") not in (None, "function"):
            raise RecordError("bad_tool_call")
        extra = {k: v for k, v in call.items() if k not in CALL_KEYS}
        calls.append(make_tool_call(function.get("name"), function.get("arguments"), call.get("id"),
                                    extra))
    return calls


def _message(message) -> dict:
    if not isinstance(message, dict):
        raise RecordError("bad_turn")
    role = message.get("role")
    if not isinstance(role, str):
        raise RecordError("missing_field:role")
    if role not in ROLES:
        raise RecordError(f"unknown_role:{role}")
    out = {"role": role, "content": _content(message)}
    part_calls = _part_calls(message)
    if part_calls and message.get("tool_calls"):
        raise RecordError("bad_tool_call")  # two places for the calls
    calls = _tool_calls(message.get("tool_calls") or part_calls or None)
    if calls:
        if role != "assistant":
            raise RecordError("bad_tool_call")
        out["tool_calls"] = calls
    else:
        if calls == []:  # kept as given: an empty list is not the same as no key
            out["tool_calls"] = []
        if role in ("user", "assistant"):
            require_content(out["content"], role)
    for key in ("name", "tool_call_id"):
        if message.get(key) is not None:
            if not isinstance(message[key], str):
                raise RecordError(f"not_a_string:{key}")
            out[key] = message[key]
    weight, weight_key = weight_of(message)
    if weight is not None:
        out["weight"] = weight
    # An explicit null of an optional key ("tool_calls": null) is kept too, in extra.
    used = ("role", "content", weight_key, *(k for k in MESSAGE_KEYS[2:] if message.get(k) is not None))
    extra = {k: v for k, v in message.items() if k not in used}
    if extra:
        check_value(extra)
        out["extra"] = extra
    return out


def check_order(messages: list[dict]) -> None:
    """The ordering rules in the module docstring."""
    if not messages:
        raise RecordError("empty_conversation")
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "system" and i > 0:
            raise RecordError("bad_role_order")
        if role == "tool":
            before = messages[i - 1] if i else None
            if before is None or not (before["role"] == "tool" or before.get("tool_calls")):
                raise RecordError("bad_role_order")
    last = messages[-1]["role"]
    if last == "user":
        raise RecordError("ends_with_user")
    if last == "tool":
        raise RecordError("ends_with_tool")
    if last != "assistant":
        raise RecordError("no_assistant_turn")


def to_canonical(row: dict) -> dict:
    """An OpenAI ``messages`` row as canonical ``messages``, ``tools`` and ``meta``."""
    messages = [_message(m) for m in require_list(row, "messages")]
    check_order(messages)
    meta = extra_fields(row, FIELDS)
    check_value(meta)
    tools = parse_tools(row.get("tools"))
    tools = None if tools is None else [bare_tool(t) for t in tools]  # canonical: bare specs
    return {"messages": messages, "tools": tools, "meta": meta}


def _out_message(message: dict) -> dict:
    out = clean_message(message)
    if informative_weight(out["role"], out.get("weight")) is None:
        out.pop("weight", None)
    extra = out.pop("extra", None) or {}
    calls = []
    for call in out.get("tool_calls") or []:
        call_extra = call.pop("extra", None) or {}
        if call.get("id") is None:
            call.pop("id", None)
        calls.append(spread(call, call_extra, "openai"))
    if "tool_calls" in out:
        out["tool_calls"] = calls
    return spread(out, extra, "openai")


def from_canonical(record: dict) -> dict:
    """A canonical record as an OpenAI ``messages`` row.

    Rejected as ``not_representable_as_openai:<rule>`` when it breaks the ordering rules
    (e.g. a ShareGPT observation that answers no function call).
    """
    try:
        check_order(record["messages"])
    except RecordError as exc:
        raise RecordError(f"not_representable_as_openai:{exc.reason}") from None
    out = {"messages": [_out_message(m) for m in record["messages"]]}
    if record.get("tools") is not None:
        out["tools"] = [openai_tool(t) for t in record["tools"]]
    return spread_meta(out, record.get("meta") or {}, "openai")

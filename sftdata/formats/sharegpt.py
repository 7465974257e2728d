"""ShareGPT: ``conversations`` of ``{from, value}``, optional ``system`` and ``tools`` columns.

``from`` is one of system / human / gpt / function_call / observation (user, assistant
and tool are accepted as aliases and written back as human, gpt and observation).
The rules are LLaMA-Factory's: a system turn only at index 0; after it, turns
alternate human-or-observation then gpt-or-function_call; the conversation ends with
gpt or function_call. ``function_call`` is an assistant turn with ``tool_calls`` (its
value is ``{"name", "arguments"}`` JSON, or a list of them), ``observation`` a ``tool``
turn. ``tools`` is a JSON string of function specs. A per-turn loss ``weight`` (or
``loss_weight``) is kept on the turn where it differs from the role's default
(``common.informative_weight``); LLaMA-Factory ignores the extra key. Every column is
written, empty where absent (``system`` "", ``tools`` ""), since LLaMA-Factory indexes
each column its entry names. Any other
key of a turn (``id``, ``timestamp``, ``reasoning_content``...) rides in the message's
``extra`` and is written back on the turn.

Function-call values and ``tools`` are parsed; when re-encoding them would not give
back the input's exact text (other key order or spacing), the text is kept as a hint
in ``meta`` and written back as long as it still encodes the same value.

>>> rec = to_canonical({"conversations": [{"from": "human", "value": "hi"},
...                                        {"from": "gpt", "value": "hello"}]})
>>> [m["role"] for m in rec["messages"]]
['user', 'assistant']
>>> from_canonical(rec)
{'conversations': [{'from': 'human', 'value': 'hi'}, {'from': 'gpt', 'value': 'hello'}], 'system': '', 'tools': ''}
"""

from __future__ import annotations

import json

from sftdata.errors import RecordError
from sftdata.formats.common import (
    check_value,
    decode_arguments,
    extra_fields,
    hints,
    informative_weight,
    make_tool_call,
    parse_tools,
    require_content,
    require_list,
    require_str,
    spread,
    spread_meta,
    weight_of,
)
from sftdata.records import HINTS_KEY

FIELDS = ("conversations", "system", "tools")
ALIASES = {"user": "human", "assistant": "gpt", "tool": "observation"}
PROMPT_SIDE = ("human", "observation")
ANSWER_SIDE = ("gpt", "function_call")
KNOWN = ("system", *PROMPT_SIDE, *ANSWER_SIDE)


def _turn(turn) -> tuple[str, str, float | None, dict]:
    """(speaker, value, weight, extra keys) of one turn."""
    if not isinstance(turn, dict):
        raise RecordError("bad_turn")
    speaker_key = "from" if "from" in turn else "role"
    value_key = "value" if "value" in turn else "content"
    speaker, value = turn.get(speaker_key), turn.get(value_key)
    if not isinstance(speaker, str):
        raise RecordError("missing_field:from")
    speaker = ALIASES.get(speaker, speaker)
    if speaker not in KNOWN:
        raise RecordError(f"unknown_role:{speaker}")
    if not isinstance(value, str):
        raise RecordError("not_a_string:value" if value is not None else "missing_field:value")
    weight, weight_key = weight_of(turn)
    extra = {k: v for k, v in turn.items() if k not in (speaker_key, value_key, weight_key)}
    check_value(extra)
    return speaker, value, weight, extra


def _function_calls(value: str) -> list[dict]:
    try:
        calls = json.loads(value)
    except json.JSONDecodeError:
        raise RecordError("bad_tool_call") from None
    calls = calls if isinstance(calls, list) else [calls]
    if not calls or not all(isinstance(c, dict) for c in calls):
        raise RecordError("bad_tool_call")
    return [make_tool_call(c.get("name"), c.get("arguments")) for c in calls]


def check_order(speakers: list[str]) -> None:
    """The ShareGPT turn order after an optional leading system turn (see module doc)."""
    if not speakers:
        raise RecordError("empty_conversation")
    for i, speaker in enumerate(speakers):
        expected = PROMPT_SIDE if i % 2 == 0 else ANSWER_SIDE
        if speaker not in expected:
            raise RecordError("bad_role_order")
    if speakers[-1] == "human":
        raise RecordError("ends_with_user")
    if speakers[-1] == "observation":
        raise RecordError("ends_with_tool")


def to_canonical(row: dict) -> dict:
    """A ShareGPT row as canonical ``messages``, ``tools`` and ``meta``."""
    turns = [_turn(t) for t in require_list(row, "conversations")]
    system = require_str(row, "system", optional=True)
    meta = extra_fields(row, FIELDS)
    check_value(meta)
    messages = [{"role": "system", "content": system}] if system else []
    if turns and turns[0][0] == "system":
        if system:
            raise RecordError("two_system_prompts")
        _, value, weight, extra = turns.pop(0)
        messages = [_with(weight, extra, {"role": "system", "content": value})] if value else []
        meta[HINTS_KEY] = {"system_turn": True}
        if not value and (weight is not None or extra):
            raise RecordError("empty_content:system")
    check_order([speaker for speaker, _, _, _ in turns])
    raw_calls = {}
    for speaker, value, weight, extra in turns:
        if speaker == "human":
            message = {"role": "user", "content": require_content(value, "human")}
        elif speaker == "gpt":
            message = {"role": "assistant", "content": require_content(value, "gpt")}
        elif speaker == "function_call":
            message = {"role": "assistant", "content": "", "tool_calls": _function_calls(value)}
            if _function_call_value(message) != value:
                raw_calls[str(len(messages))] = value
        else:
            message = {"role": "tool", "content": value}
        messages.append(_with(weight, extra, message))
    tools = parse_tools(row.get("tools"))
    raw = {"function_calls": raw_calls} if raw_calls else {}
    if isinstance(row.get("tools"), str) and tools is not None and _dump(tools) != row["tools"]:
        raw["tools"] = row["tools"]
    if raw:
        meta[HINTS_KEY] = {**meta.get(HINTS_KEY, {}), **raw}
    return {"messages": messages, "tools": tools, "meta": meta}


def _with(weight: float | None, extra: dict, message: dict) -> dict:
    if weight is not None:
        message["weight"] = weight
    if extra:
        message["extra"] = extra
    return message


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _same_json(text: str, value) -> bool:
    try:
        return json.loads(text) == value
    except json.JSONDecodeError:
        return False


def _not_representable(why: str) -> RecordError:
    return RecordError(f"not_representable_as_sharegpt:{why}")


def _function_call_value(message: dict, raw: str | None = None) -> str:
    calls = [
        {"name": c["function"]["name"], "arguments": decode_arguments(c["function"]["arguments"])}
        for c in message["tool_calls"]
    ]
    value = calls[0] if len(calls) == 1 else calls
    return raw if raw is not None and _same_json(raw, value) else _dump(value)


def from_canonical(record: dict) -> dict:
    """A canonical record as a ShareGPT row."""
    messages = list(record["messages"])
    meta = record.get("meta") or {}
    out: dict = {}
    system = None
    if messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    raw = hints(meta)
    raw_calls = raw.get("function_calls", {})
    offset = 0 if system is None else 1
    conversations = []
    for index, message in enumerate(messages, start=offset):
        role = message["role"]
        if role == "system":
            raise _not_representable("system_not_first")
        if message.get("name") is not None or message.get("tool_call_id") is not None:
            raise _not_representable("message_fields")
        if role == "user":
            turn = {"from": "human", "value": message["content"]}
        elif role == "tool":
            turn = {"from": "observation", "value": message["content"]}
        elif message.get("tool_calls"):
            if message["content"].strip():
                raise _not_representable("content_with_tool_calls")
            turn = {"from": "function_call",
                    "value": _function_call_value(message, raw_calls.get(str(index)))}
        else:
            turn = {"from": "gpt", "value": message["content"]}
        weight = informative_weight(role, message.get("weight"))
        if weight is not None:
            turn["weight"] = weight
        if message.get("tool_calls") == []:
            turn["tool_calls"] = []
        if any(c.get("extra") for c in message.get("tool_calls") or []):
            raise _not_representable("tool_call_fields")
        conversations.append(spread(turn, message.get("extra") or {}, "sharegpt"))
    try:
        check_order([t["from"] for t in conversations])
    except RecordError as exc:
        raise _not_representable(exc.reason) from None
    first = record["messages"][0]
    if system is not None and hints(meta).get("system_turn"):
        turn = {"from": "system", "value": system}
        if informative_weight("system", first.get("weight")) is not None:
            turn["weight"] = first["weight"]
        conversations.insert(0, spread(turn, first.get("extra") or {}, "sharegpt"))
    elif system is not None:
        if informative_weight("system", first.get("weight")) is not None or first.get("extra") \
                or first.get("name") is not None:
            raise _not_representable("system_fields")
        out["system"] = system
    out = {"conversations": conversations, "system": out.get("system", "")}
    tools = record.get("tools")
    out["tools"] = ""
    if tools is not None:
        kept = raw.get("tools")
        out["tools"] = kept if kept is not None and _same_json(kept, tools) else _dump(tools)
    return spread_meta(out, meta, "sharegpt")

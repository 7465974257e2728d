"""Alpaca: ``instruction``, ``input``, ``output``, optional ``system`` and ``history``.

To canonical: optional system message, each history pair as user/assistant, then
user = instruction + "\\n" + input (``join_prompt``: just instruction when input is
empty, missing or null), then assistant = output. Back: the last user/assistant pair
becomes instruction/output with input "", earlier pairs become ``history``, a leading
system message becomes ``system``. Every column is written, empty where absent
(``system`` "", ``history`` []): loaders index every column their config names. A record with tools or tool turns, or one that does
not end with an assistant turn, is rejected as ``not_representable_as_alpaca``; so is
one with per-message loss weights other than the implied ones (assistant 1, others 0),
and one whose messages carry keys Alpaca has no place for (``:message_fields``).

The one lossy step: a non-empty ``input`` comes back merged into ``instruction``.

>>> rec = to_canonical({"instruction": "Add", "input": "2+2", "output": "4"})
>>> [m["content"] for m in rec["messages"]]
['Add\\n2+2', '4']
>>> from_canonical(rec)
{'instruction': 'Add\\n2+2', 'input': '', 'output': '4', 'system': '', 'history': []}
"""

from __future__ import annotations

from sftdata.errors import RecordError
from sftdata.formats.common import check_value, extra_fields, require_content, require_str, spread_meta

REQUIRED = ("instruction", "output")
OPTIONAL = ("input", "system", "history")
FIELDS = ("instruction", "input", "output", "system", "history")
JOIN = "\n"  # between instruction and a non-empty input
NOT_REPRESENTABLE = "not_representable_as_alpaca"


def join_prompt(instruction: str, input_text: str | None) -> str:
    """The user turn: ``instruction``, plus ``JOIN`` and ``input`` when input is not empty."""
    return f"{instruction}{JOIN}{input_text}" if input_text else instruction


def _history(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError("bad_history")
    messages = []
    for pair in value:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(t, str) for t in pair)):
            raise RecordError("bad_history")
        messages.append({"role": "user", "content": require_content(pair[0], "history")})
        messages.append({"role": "assistant", "content": require_content(pair[1], "history")})
    return messages


def to_canonical(row: dict) -> dict:
    """An Alpaca row as canonical ``messages`` (+ ``meta`` with the other fields)."""
    instruction = require_str(row, "instruction")
    input_text = require_str(row, "input", optional=True) or ""
    output = require_str(row, "output")
    system = require_str(row, "system", optional=True)
    messages = [{"role": "system", "content": system}] if system else []
    messages += _history(row.get("history"))
    messages.append({"role": "user", "content": require_content(join_prompt(instruction, input_text),
                                                                "instruction")})
    messages.append({"role": "assistant", "content": require_content(output, "output")})
    meta = extra_fields(row, FIELDS)
    check_value(meta)
    return {"messages": messages, "tools": None, "meta": meta}


def facts(inputs: list) -> dict[str, int]:
    """What only the raw rows tell (the audit shows it): of the given ``input`` values of
    kept records, how many were empty (missing, null or "")."""
    return {"empty_input": sum(1 for value in inputs if value in (None, ""))}


def from_canonical(record: dict) -> dict:
    """A canonical record as an Alpaca row; ``not_representable_as_alpaca`` if it can't be."""
    messages = list(record["messages"])
    if record.get("tools"):
        raise RecordError(NOT_REPRESENTABLE)
    system = None
    if messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    roles = [m["role"] for m in messages]
    pairs_ok = len(roles) >= 2 and len(roles) % 2 == 0 and all(
        role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles)
    )
    if not pairs_ok or any(m.get("tool_calls") for m in messages):
        raise RecordError(NOT_REPRESENTABLE)
    if any(m.get("weight") is not None and m["weight"] != (m["role"] == "assistant")
           for m in record["messages"]):
        raise RecordError(f"{NOT_REPRESENTABLE}:weights")
    if any(m.get("extra") or m.get("tool_calls") is not None or m.get("name") is not None
           or m.get("tool_call_id") is not None for m in record["messages"]):
        raise RecordError(f"{NOT_REPRESENTABLE}:message_fields")
    out = {
        "instruction": messages[-2]["content"],
        "input": "",
        "output": messages[-1]["content"],
        "system": system or "",
        "history": [[messages[i]["content"], messages[i + 1]["content"]]
                    for i in range(0, len(messages) - 2, 2)],
    }
    return spread_meta(out, record.get("meta") or {}, "alpaca")

"""Alpaca: ``instruction``, ``input``, ``output``, optional ``system`` and ``history``.

To canonical: optional system message, each history pair as user/assistant, then
user = instruction + "\\n" + input (just instruction when input is empty, missing or
null), then assistant = output. Back: the last user/assistant pair becomes
instruction/output with input "", earlier pairs become ``history``, a leading system
message becomes ``system``. A record with tools or tool turns, or one that does not end
with an assistant turn, is rejected as ``not_representable_as_alpaca``; so is one with
per-message loss weights other than the implied ones (assistant 1, others 0).

The one lossy step: a non-empty ``input`` comes back merged into ``instruction``.

>>> rec = to_canonical({"instruction": "Add", "input": "2+2", "output": "4"})
>>> [m["content"] for m in rec["messages"]]
['Add\\n2+2', '4']
>>> from_canonical(rec)
{'instruction': 'Add\\n2+2', 'input': '', 'output': '4'}
"""

from __future__ import annotations

from sftdata.errors import RecordError
from sftdata.formats.common import extra_fields, require_content, require_str, spread_meta

FIELDS = ("instruction", "input", "output", "system", "history")
NOT_REPRESENTABLE = "not_representable_as_alpaca"


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
    prompt = f"{instruction}\n{input_text}" if input_text else instruction
    messages.append({"role": "user", "content": require_content(prompt, "instruction")})
    messages.append({"role": "assistant", "content": require_content(output, "output")})
    return {"messages": messages, "tools": None, "meta": extra_fields(row, FIELDS)}


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
    out = {
        "instruction": messages[-2]["content"],
        "input": "",
        "output": messages[-1]["content"],
    }
    if system:
        out["system"] = system
    if len(messages) > 2:
        out["history"] = [
            [messages[i]["content"], messages[i + 1]["content"]]
            for i in range(0, len(messages) - 2, 2)
        ]
    return spread_meta(out, record.get("meta") or {})

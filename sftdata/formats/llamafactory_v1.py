"""LLaMA-Factory v1 SFT samples: ``messages`` whose ``content`` is a list of parts
(``{"type": "text" | "tool_call", "value": ...}``), a ``loss_weight`` on every message,
and ``tools`` as a JSON string.

Reading goes through the OpenAI rules (``sftdata.formats.openai``), which take content
parts, ``tool_call`` parts and ``loss_weight``. Writing: each message's text as one
``text`` part (none for an assistant turn that only calls tools), each tool call as a
``tool_call`` part whose value is ``{"name", "arguments"}`` JSON, and ``loss_weight``
on every message (the message's weight, else 1 for assistant turns and 0 for the
others, as LLaMA-Factory's v1 renderer assumes). Other message keys and ``meta`` are
written back beside them, as the OpenAI writer does.

>>> rec = to_canonical({"messages": [{"role": "user", "content": [{"type": "text", "value": "hi"}]},
...                                  {"role": "assistant", "content": "hello"}]})
>>> from_canonical(rec)["messages"][1]
{'role': 'assistant', 'content': [{'type': 'text', 'value': 'hello'}], 'loss_weight': 1.0}
"""

from __future__ import annotations

import json

from sftdata.errors import RecordError
from sftdata.formats import openai
from sftdata.formats.common import decode_arguments, default_weight, spread, spread_meta
from sftdata.records import clean_message

FIELDS = ("messages", "tools")
to_canonical = openai.to_canonical


def _message(message: dict) -> dict:
    m = clean_message(message)
    parts = [] if m.get("tool_calls") and not m["content"] else [{"type": "text", "value": m["content"]}]
    for call in m.get("tool_calls") or []:
        if call.get("extra") or call.get("id") is not None:
            raise RecordError("not_representable_as_llamafactory_v1:tool_call_fields")
        value = {"name": call["function"]["name"], "arguments": decode_arguments(call["function"]["arguments"])}
        parts.append({"type": "tool_call", "value": json.dumps(value, ensure_ascii=False)})
    weight = m.get("weight")
    out = {"role": m["role"], "content": parts,
           "loss_weight": weight if weight is not None else default_weight(m["role"])}
    for key in ("name", "tool_call_id"):
        if m.get(key) is not None:
            out[key] = m[key]
    return spread(out, m.get("extra") or {}, "llamafactory_v1")


def from_canonical(record: dict) -> dict:
    """A canonical record as a LLaMA-Factory v1 sample (the OpenAI ordering rules hold)."""
    try:
        openai.check_order(record["messages"])
    except RecordError as exc:
        raise RecordError(f"not_representable_as_llamafactory_v1:{exc.reason}") from None
    out: dict = {"messages": [_message(m) for m in record["messages"]]}
    if record.get("tools") is not None:
        out["tools"] = json.dumps(record["tools"], ensure_ascii=False)
    return spread_meta(out, record.get("meta") or {}, "llamafactory_v1")

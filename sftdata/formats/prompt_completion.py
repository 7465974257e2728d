"""TRL's conversational prompt/completion: ``prompt`` (the messages before the answer)
and ``completion`` (the answer: every message after the last user turn), optional
``tools``. TRL's SFTTrainer trains on the completion only.

Reading takes both TRL kinds: conversational (lists of messages, OpenAI rules) and
standard (``prompt`` and ``completion`` strings: one user and one assistant turn).
Writing rejects (``not_representable_as_prompt_completion:weights``) a record whose
weights say otherwise: a prompt message with a weight above 0, or a completion message
with weight 0, since TRL would train the opposite.

>>> row = {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]}
>>> from_canonical(to_canonical(row)) == row
True
>>> [m["role"] for m in to_canonical({"prompt": "2+2?", "completion": "4"})["messages"]]
['user', 'assistant']
"""

from __future__ import annotations

from sftdata.errors import RecordError
from sftdata.formats import openai
from sftdata.formats.common import extra_fields, informative_weight, spread_meta

FIELDS = ("prompt", "completion", "tools")
NOT_REPRESENTABLE = "not_representable_as_prompt_completion"


def to_canonical(row: dict) -> dict:
    """A prompt/completion row as canonical messages (through the OpenAI rules)."""
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is None:
        raise RecordError("missing_field:prompt")
    if completion is None:
        raise RecordError("missing_field:completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    elif isinstance(prompt, list) and isinstance(completion, list):
        messages = prompt + completion
    else:
        raise RecordError("bad_prompt_completion")
    converted = openai.to_canonical({"messages": messages, "tools": row.get("tools")})
    converted["meta"] = extra_fields(row, FIELDS)
    return converted


def from_canonical(record: dict) -> dict:
    """A canonical record as a conversational prompt/completion row."""
    out = openai.from_canonical({**record, "meta": {}})
    messages = out["messages"]
    last_user = max((i for i, m in enumerate(record["messages"]) if m["role"] == "user"), default=-1)
    if last_user < 0:
        raise RecordError(f"{NOT_REPRESENTABLE}:no_user_turn")
    split = last_user + 1
    trained = [informative_weight(m["role"], m.get("weight")) for m in record["messages"]]
    if any(w is not None and w > 0 for w in trained[:split]) or \
            any(m.get("weight") == 0 for m in record["messages"][split:] if m["role"] == "assistant"):
        raise RecordError(f"{NOT_REPRESENTABLE}:weights")
    for m in messages:  # weights are said by the split itself
        m.pop("weight", None)
    row = {"prompt": messages[:split], "completion": messages[split:]}
    if "tools" in out:
        row["tools"] = out["tools"]
    return spread_meta(row, record.get("meta") or {}, "prompt_completion")

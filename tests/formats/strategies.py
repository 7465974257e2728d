"""Hypothesis strategies for valid records of each format (the round-trip contracts)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# Non-blank text with any Unicode (CJK, emoji, RTL...), newlines included.
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
any_text = st.text(max_size=40)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), any_text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=6,
)
extra_key = st.text(min_size=1, max_size=10).filter(
    lambda k: k not in {"instruction", "input", "output", "system", "history", "conversations",
                        "tools", "messages", "_sftdata"}
)
extras = st.dictionaries(extra_key, json_value, max_size=2)
tool_spec = st.fixed_dictionaries(
    {"name": text, "description": any_text,
     "parameters": st.just({"type": "object", "properties": {}})}
)
arguments = st.dictionaries(any_text, json_value, max_size=3)


@st.composite
def alpaca_rows(draw):
    row = {"instruction": draw(text), "output": draw(text)}
    input_kind = draw(st.sampled_from(["missing", "null", "empty", "text"]))
    if input_kind == "null":
        row["input"] = None
    elif input_kind == "empty":
        row["input"] = ""
    elif input_kind == "text":
        row["input"] = draw(text)
    if draw(st.booleans()):
        row["system"] = draw(text)
    if draw(st.booleans()):
        row["history"] = draw(st.lists(st.lists(text, min_size=2, max_size=2), min_size=1, max_size=3))
    row.update(draw(extras))
    return row


def _function_call(draw) -> str:
    calls = draw(st.lists(st.fixed_dictionaries({"name": text, "arguments": arguments}),
                          min_size=1, max_size=3))
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


@st.composite
def sharegpt_rows(draw):
    pairs = draw(st.integers(1, 4))
    turns = []
    for _ in range(pairs):
        if draw(st.booleans()) or not turns:
            turns.append({"from": "human", "value": draw(text)})
        else:
            turns.append({"from": "observation", "value": draw(any_text)})
        if draw(st.booleans()):
            turns.append({"from": "gpt", "value": draw(text)})
            if draw(st.booleans()):
                turns[-1]["weight"] = draw(st.sampled_from([0.0, 1.0, 0.5]))
        else:
            turns.append({"from": "function_call", "value": _function_call(draw)})
    row = {"conversations": turns}
    system = draw(st.sampled_from(["none", "column", "turn"]))
    if system == "column":
        row["system"] = draw(text)
    elif system == "turn":
        turns.insert(0, {"from": "system", "value": draw(text)})
    if draw(st.booleans()):
        row["tools"] = json.dumps(draw(st.lists(tool_spec, max_size=2)), ensure_ascii=False)
    row.update(draw(extras))
    return row


@st.composite
def openai_rows(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 3))):
        user = {"role": "user", "content": draw(text)}
        if draw(st.booleans()):
            user["name"] = draw(text)
        messages.append(user)
        if draw(st.booleans()):
            calls = [
                {"id": draw(text), "type": "function",
                 "function": {"name": draw(text),
                              "arguments": json.dumps(draw(arguments), ensure_ascii=False)}}
                for _ in range(draw(st.integers(1, 2)))
            ]
            messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "content": draw(any_text), "tool_call_id": call["id"]})
        answer = {"role": "assistant", "content": draw(text)}
        if draw(st.booleans()):
            answer["weight"] = draw(st.sampled_from([0, 1, 0.5]))
        messages.append(answer)
    row = {"messages": messages}
    if draw(st.booleans()):
        row["tools"] = draw(st.lists(tool_spec, max_size=2))
    row.update(draw(extras))
    return row

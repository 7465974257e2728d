"""Small canonical frames with known contents for the audit tests."""

from __future__ import annotations

import json

import pytest

from sftdata.records import frame_from_records, record_id


def rec(messages, source="a.jsonl", tools=None):
    msgs = [{"role": r, "content": c} for r, c in messages]
    return {"id": record_id(msgs), "messages": msgs, "tools": tools, "source": source, "meta": {}}


def tool_record():
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "c1"},
        {"role": "assistant", "content": "It is 21 degrees in Paris."},
    ]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    return {"id": "tool-1", "messages": messages, "tools": tools, "source": "b.jsonl", "meta": {}}


@pytest.fixture
def small_records():
    """Six records: a system prompt, a multi-turn chat, a tool call, Chinese text and one
    exact duplicate (case and spacing differ) of the second record."""
    return [
        rec([("system", "You are terse."), ("user", "Write a poem about cats"),
             ("assistant", "Cats nap in sun")]),
        rec([("user", "Please write an essay on dogs"), ("assistant", "Dogs are loyal friends.")]),
        rec([("user", "Explain gravity"), ("assistant", "Mass attracts mass."),
             ("user", "Why?"), ("assistant", "Because spacetime curves.")]),
        tool_record(),
        rec([("user", "识别并解释细胞理论"), ("assistant", "细胞是生命的基本单位")], source="zh.json"),
        rec([("user", "please  WRITE an essay on dogs"), ("assistant", "Dogs are loyal friends!")]),
    ]


@pytest.fixture
def small_frame(small_records):
    return frame_from_records(small_records)


def write_json(path, rows):
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path

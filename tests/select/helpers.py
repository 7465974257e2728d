"""Small builders for the selection tests."""

from __future__ import annotations

import json

from sftdata.records import frame_from_records

PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Name three primary colours.", "Red, yellow and blue are the three primary colours."),
    ("Translate 'good morning' into Spanish.", "Buenos días."),
    ("Give me a synonym for 'happy'.", "A synonym for happy is cheerful."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Write a haiku about rain.", "Soft rain on the roof,\nthe garden drinks in silence,\nclouds drift slowly by."),
]


def records(pairs=PAIRS, source="test", meta=None, ids=None) -> list[dict]:
    return [{"id": ids[i] if ids else f"r{i}",
             "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
             "source": source, "meta": (meta[i] if meta else {})}
            for i, (p, r) in enumerate(pairs)]


def frame(pairs=PAIRS, **kwargs):
    return frame_from_records(records(pairs, **kwargs))


def metas(frame) -> list[dict]:
    return [json.loads(m) for m in frame["meta"].to_list()]


def details(frame) -> list[dict]:
    return [json.loads(d) if d else None for d in frame["detail"].to_list()]

"""Small chat data for the trainer tests (imported by conftest and the tests)."""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = ["the sea", "a red fox", "bread", "the moon", "trains", "winter", "a violin", "maps"]


def make_records(n: int, seed: int = 0, multi_turn: bool = True) -> list[dict]:
    """Small OpenAI-style chat records with varied lengths and a learnable pattern."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        reps = rng.randint(1, 6)
        messages = [{"role": "system", "content": "Answer briefly."}] if i % 3 == 0 else []
        messages += [{"role": "user", "content": f"Tell me about {topic}."},
                     {"role": "assistant", "content": f"{topic.capitalize()} is nice. " * reps}]
        if multi_turn and i % 4 == 1:
            messages += [{"role": "user", "content": "And more?"},
                         {"role": "assistant", "content": f"More about {topic}. " * rng.randint(1, 3)}]
        rows.append({"messages": messages})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path

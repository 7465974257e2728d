"""Synthetic SFT records with every kind of thing the steps drop: exact copies (case,
spacing and punctuation changed), near copies (a word or two changed), empty and
refusal answers, tool calls, CJK text and quality scores, written in the tests."""

from __future__ import annotations

import json
import random

WORDS = ("river stone garden lamp copper window quiet market winter signal harbor violet engine "
         "paper cloud mirror forest ladder orbit candle meadow silver thunder basket planet "
         "lantern pebble canyon falcon velvet timber glacier").split()


def records(n: int, seed: int = 0) -> list[dict]:
    """``n`` Alpaca records; about a fifth are exact or near copies of earlier ones."""
    rng = random.Random(seed)
    out: list[dict] = []
    for i in range(n):
        roll = rng.random()
        if out and roll < 0.1:  # exact copy, written differently
            src = rng.choice(out)
            rec = {**src, "instruction": src["instruction"].upper() + " !", "output": "  " + src["output"]}
        elif out and roll < 0.2 and len(out[-1]["output"].split()) > 3:  # near copy: one word changed
            src = out[-1] if rng.random() < 0.5 else rng.choice(out[-50:])
            words = src["output"].split() or ["empty"]
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            rec = {**src, "output": " ".join(words)}
        else:
            length = rng.randint(12, 60)
            rec = {"instruction": f"Describe the {rng.choice(WORDS)} and the {rng.choice(WORDS)} ({i % 97})",
                   "input": "" if rng.random() < 0.7 else " ".join(rng.choices(WORDS, k=5)),
                   "output": " ".join(rng.choices(WORDS, k=length)) + "."}
            if roll > 0.97:
                rec["output"] = ""
            elif roll > 0.95:
                rec["output"] = "I'm sorry, but as an AI language model I cannot help with that."
            elif roll > 0.93:
                rec["output"] = "河流和石头" * rng.randint(1, 4) + rng.choice(WORDS)
        rec = dict(rec)
        rec["quality_score"] = round(rng.random(), 3)
        out.append(rec)
    return out


def write_jsonl(path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

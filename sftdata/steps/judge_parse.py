"""Scores out of a judge's answer: token probabilities (G-Eval), JSON, or a number in text.

``parse_score(text, logprobs, lo, hi)`` returns a ``Parsed`` with the score and how it
was found, or with ``score=None`` and why not. In order:

1. ``logprobs`` (OpenAI's ``choice.logprobs.content``, when the endpoint returned them):
   at the first answer token that is a score on the scale, the probabilities of every
   score token among its top alternatives are renormalised and the expected score is
   taken (G-Eval, Liu et al. 2023): a finer score than the sampled digit.
2. A JSON object in the answer with a ``score`` key (or the rubric's own key).
3. A labelled number: ``Score: 4``, ``**Rating** - 4.5``, ``Quality: 5/6``.
4. A number the answer opens with: ``4``, ``4/5``, ``4 out of 5``.

A number off the scale is not clamped: it is "out of range", like an answer with no
number at all, and the step rejects the record with the raw answer.

>>> parse_score("Score: 4\\nThe answer is right.", None, 0, 5).score
4.0
>>> parse_score('{"score": 3, "why": "ok"}', None, 1, 6).score
3.0
>>> parse_score("[3]...[50987654", None, 0, 5).why
'no score in the answer (numbers: 3, 50987654)'
>>> parse_score("Score: 7", None, 0, 5).why
'out of range 0-5: 7'
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

NUMBER = r"[-+]?\d+(?:\.\d+)?"
_LABELLED = re.compile(
    rf"(?i)\b(?:score|rating|rate|rated|quality|complexity|grade)\b[^\d\n]{{0,20}}?({NUMBER})")
# A bare number opening the answer, then the end, a space or punctuation ("4", "4/5",
# "(4) Good"): not "[3]...", which is how junk answers start.
_LEADING = re.compile(rf"^[\s*#\"'(]{{0,4}}({NUMBER})(?:\s*(?:/|out of)\s*{NUMBER})?(?=$|[\s.,;:!)])")
_ANY = re.compile(NUMBER)


@dataclass
class Parsed:
    score: float | None
    how: str | None = None  # logprobs, json, labelled, leading
    why: str | None = None  # when score is None


def _in_scale(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


def _score_token(token: str, lo: float, hi: float) -> int | None:
    t = token.strip()
    if re.fullmatch(r"\d+", t) and _in_scale(int(t), lo, hi):
        return int(t)
    return None


def from_logprobs(logprobs: list | None, lo: float, hi: float) -> float | None:
    """G-Eval expected score from the first position whose token is a score."""
    for position in logprobs or []:
        if _score_token(position.get("token", ""), lo, hi) is None:
            continue
        mass: dict[int, float] = {}
        for alt in position.get("top_logprobs") or [position]:
            value = _score_token(alt.get("token", ""), lo, hi)
            if value is not None and alt.get("logprob") is not None:
                mass[value] = mass.get(value, 0.0) + math.exp(alt["logprob"])
        total = sum(mass.values())
        if total > 0:
            return sum(v * p for v, p in mass.items()) / total
        return None
    return None


def _from_json(text: str, keys: tuple[str, ...]) -> float | None:
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        for key in keys:
            value = obj.get(key) if isinstance(obj, dict) else None
            if isinstance(value, str) and re.fullmatch(NUMBER, value.strip()):
                value = float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def parse_score(text: str, logprobs: list | None, lo: float, hi: float,
                key: str = "score", use_logprobs: bool = True) -> Parsed:
    """The score in a judge's answer, or why there is none (see the module docstring)."""
    if use_logprobs:
        expected = from_logprobs(logprobs, lo, hi)
        if expected is not None:
            return Parsed(round(expected, 4), "logprobs")
    text = text or ""
    found = []
    value = _from_json(text, (key, "score", "rating"))
    if value is not None:
        found.append((value, "json"))
    match = _LABELLED.search(text)
    if match:
        found.append((float(match.group(1)), "labelled"))
    match = _LEADING.search(text.strip())
    if match:
        found.append((float(match.group(1)), "leading"))
    for value, how in found:
        if _in_scale(value, lo, hi):
            return Parsed(value, how)
    if found:
        shown = ", ".join(_fmt(v) for v, _ in found)
        return Parsed(None, why=f"out of range {_fmt(lo)}-{_fmt(hi)}: {shown}")
    numbers = [m.group(0)[:12] for m in _ANY.finditer(text)][:5]
    return Parsed(None, why="no score in the answer" + (f" (numbers: {', '.join(numbers)})" if numbers else ""))


def _fmt(value) -> str:
    value = float(value)
    return str(int(value)) if value == int(value) else str(value)

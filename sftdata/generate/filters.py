"""Self-Instruct's cheap filters on new instructions and on generated instances.

Each check returns a reject reason code or None. The ROUGE-L diversity filter lives in
``rouge.py`` because it needs the pool.
"""

from __future__ import annotations

import re
import string


def blocklist_pattern(words: list[str]) -> re.Pattern | None:
    """One case-insensitive regex matching any blocklisted word or phrase as whole words."""
    words = [w.strip() for w in words if w.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return re.compile(rf"\b(?:{alternatives})\b", re.I)


def instruction_reason(
    text: str, min_words: int, max_words: int, blocklist: re.Pattern | None
) -> str | None:
    """Why a new instruction is rejected before the similarity check, or None.

    >>> instruction_reason("Draw a map of your town.", 3, 150, blocklist_pattern(["map"]))
    'unproducible_keyword'
    >>> instruction_reason("List two facts about Mars.", 3, 150, None) is None
    True
    """
    words = text.split()
    if len(words) <= min_words:
        return "too_few_words"
    if len(words) > max_words:
        return "too_many_words"
    if blocklist is not None and blocklist.search(text):
        return "unproducible_keyword"
    if text[0] in string.punctuation:
        return "starts_with_punctuation"
    if not text[0].isascii():
        return "starts_with_non_ascii"
    if text.lower().startswith(("write a program", "i ", "sure", "here are", "here is")):
        # Program-writing tasks cannot be checked; the rest are the model talking.
        return "not_an_instruction"
    return None


def instance_reason(input_text: str, output: str) -> str | None:
    """Why a generated instance is dropped: empty output, or output that repeats the input."""
    if not output.strip():
        return "empty_output"
    if input_text.strip() and output.strip().lower() == input_text.strip().lower():
        return "output_equals_input"
    return None


def conflicting_instances(instances: list[tuple[str, str]]) -> bool:
    """True when the same input maps to different outputs (the task is then dropped)."""
    outputs: dict[str, str] = {}
    for input_text, output in instances:
        key = input_text.strip().lower()
        if key in outputs and outputs[key] != output.strip().lower():
            return True
        outputs[key] = output.strip().lower()
    return False

"""Self-Instruct's cheap filters on new instructions and on generated instances.

Each check returns a reject reason code or None. The instruction heuristics are the
``self_instruct`` filter step's own (``sftdata.steps.filters_content.instruction_checks``:
words as ``sftdata.text`` counts them, the same phrase list and regex builder), plus two
that only make sense while generating (text that is the model talking). The ROUGE-L
diversity filter lives in ``rouge.py`` because it needs the pool.
"""

from __future__ import annotations

import polars as pl

from sftdata.steps.filters_content import instruction_checks, whole_word_pattern
from sftdata.steps.filters_text import first_reason


def blocklist_pattern(terms: list[str]) -> str | None:
    """The filter step's case-insensitive whole-word pattern for ``terms`` (None: none)."""
    terms = [t.strip() for t in terms if t.strip()]
    return whole_word_pattern(terms) if terms else None


def instruction_reason(
    text: str, min_words: int, max_words: int, blocklist: str | None
) -> str | None:
    """Why a new instruction is rejected before the similarity check, or None.

    >>> instruction_reason("Draw a map of your town.", 3, 150, blocklist_pattern(["map"]))
    'unproducible_output'
    >>> instruction_reason("List two facts about Mars.", 3, 150, None) is None
    True
    """
    checks = instruction_checks(pl.col("prompt"), min_words, max_words, blocklist)
    reason = pl.DataFrame({"prompt": [text]}).select(first_reason(checks)).item()
    if reason is not None:
        return reason
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

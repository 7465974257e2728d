"""The pre-flight check of a data file's loss masks: what ``sftdata masks`` prints and what
``sftdata train`` runs before it loads the model.

``check_masks`` tokenises every record exactly as the trainer does and counts: records,
examples, trained tokens, turns trained and untrained (by warning code), truncated and
dropped records (by reason). Turns that should train but train nothing or the wrong
thing because of the chat template (masks.BLOCKING) make ``refusal`` return the message
``sftdata train`` stops with, naming the turns and what to do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .chat import Renderer
from .data import Example, MaskOptions, RecordMasks, tokenise_record, trained_text
from .masks import BLOCKING, WARNINGS, Located

FIXES = {
    "tool_calls_not_rendered": "use a chat template that writes tool calls (--chat-template FILE, or "
                               "--chat-template chatml-tools, sftdata's ChatML with tools, for ChatML models "
                               "such as SmolLM2)",
    "not_rendered": "use a chat template that writes these turns (--chat-template FILE)",
    "no_end_of_turn": "use a chat template that ends each answer with an end-of-turn token (--chat-template FILE)",
    "header_not_found": "check the chat template's assistant header with `sftdata masks`",
    "cannot_locate": "check these records with `sftdata masks`; the template writes them in an unusual way",
    "no_generation_block": "put every assistant turn inside {% generation %} blocks in the template",
}


@dataclass
class MaskReport:
    """Counts over a whole file, and where each warning was seen."""

    records: int = 0
    kept: int = 0
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    trained_turns: int = 0
    truncated: int = 0
    split: int = 0
    dropped: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    where: dict[str, list[str]] = field(default_factory=dict)  # code -> "record <id> turn <n>" (first few)

    def add(self, record: dict, index: int, result: RecordMasks) -> None:
        self.records += 1
        self.kept += bool(result.examples)
        self.examples += len(result.examples)
        self.tokens += sum(len(e) for e in result.examples)
        self.trained_tokens += sum(e.trained for e in result.examples)
        self.trained_turns += result.trained_turns
        self.truncated += int(result.truncated)
        self.split += len(result.split)
        if result.dropped:
            self.dropped[result.dropped] += 1
        for turn, code in result.warnings:
            self.warnings[code] += 1
            seen = self.where.setdefault(code, [])
            if len(seen) < 5:
                seen.append(f"record {record.get('id') or index} turn {turn}")

    @property
    def blocking(self) -> dict[str, int]:
        return {code: n for code, n in self.warnings.items() if code in BLOCKING}

    def lines(self) -> list[str]:
        """The summary, one fact per line."""
        out = [f"records: {self.records:,}   kept: {self.kept:,}   examples: {self.examples:,}",
               f"tokens: {self.tokens:,}   trained: {self.trained_tokens:,}"
               + (f" ({self.trained_tokens / self.tokens:.0%})" if self.tokens else ""),
               f"turns trained: {self.trained_turns:,}"
               + (f"   split into examples of their own: {self.split:,}" if self.split else ""),
               f"truncated records: {self.truncated:,}"]
        if self.warnings:
            out.append("turns with warnings:")
            out += [f"  {code}: {n:,}  ({WARNINGS[code]}; e.g. {', '.join(self.where[code][:2])})"
                    for code, n in self.warnings.most_common()]
        if self.dropped:
            out.append("dropped records: " + ", ".join(f"{r}={n:,}" for r, n in self.dropped.most_common()))
        return out

    def refusal(self) -> str | None:
        """Why training must not start (None when nothing blocks): which turns, what to do."""
        if not self.blocking:
            return None
        parts = []
        for code, n in sorted(self.blocking.items(), key=lambda kv: -kv[1]):
            parts.append(f"{n:,} turn(s) {code} ({WARNINGS[code]}; e.g. {', '.join(self.where[code][:3])}): "
                         f"{FIXES[code]}")
        return ("the loss masks would train some turns wrongly or not at all: " + "; ".join(parts)
                + ". See them with `sftdata masks DATA --model MODEL`; pass --force to train anyway.")


def check_masks(tokenizer: Any, records: Iterable[dict], max_length: int, options: MaskOptions,
                on_record: Callable[[int, dict, RecordMasks], None] | None = None,
                keep_text: bool = False) -> MaskReport:
    """Tokenise every record as the trainer does and count; ``on_record`` sees each result."""
    renderer = Renderer(tokenizer, options.chat_template_kwargs)
    report = MaskReport()
    for index, record in enumerate(records):
        result = tokenise_record(renderer, record, max_length, options, keep_text=keep_text)
        report.add(record, index, result)
        if on_record is not None:
            on_record(index, record, result)
    return report


def segments(located: Located, example: Example) -> list[tuple[str, str]]:
    """The rendered text of an example as ``(text, kind)`` pieces, kind = trained | context | cut.

    A token is trained when it is the target of a trained position (``weights[t - 1] > 0``);
    text after a truncation is ``cut``. Adjacent pieces of one kind are merged.
    """
    text, pieces, cursor = located.text, [], 0
    for t, (s, e) in enumerate(located.offsets[:len(example.input_ids)]):
        if s > cursor:
            pieces.append((text[cursor:s], "context"))
        s = max(s, cursor)
        if e > s:
            pieces.append((text[s:e], "trained" if t > 0 and example.weights[t - 1] > 0 else "context"))
        cursor = max(cursor, e)
    if len(example.input_ids) < len(located.input_ids):
        pieces.append((text[cursor:], "cut"))
    elif cursor < len(text):
        pieces.append((text[cursor:], "context"))
    merged: list[tuple[str, str]] = []
    for piece, kind in pieces:
        if merged and merged[-1][1] == kind:
            merged[-1] = (merged[-1][0] + piece, kind)
        elif piece:
            merged.append((piece, kind))
    return merged


def record_json(tokenizer: Any, record: dict, index: int, result: RecordMasks) -> dict:
    """What ``sftdata masks --json`` prints for one record."""
    return {"id": record.get("id") if record.get("id") is not None else index,
            "trained": [run for e in result.examples for run in trained_text(tokenizer, e)],
            "dropped": result.dropped, "detail": result.detail if result.dropped else None,
            "warnings": [{"turn": turn, "code": code, "message": WARNINGS[code]} for turn, code in result.warnings]}

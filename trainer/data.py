"""Canonical records -> token ids, next-token targets and per-token loss weights.

Each conversation is rendered with the tokenizer's own chat template
(``apply_chat_template``); the bundled ChatML template stands in when the tokenizer has
none. Which characters are trained is found by rendering prefixes: message ``i`` covers
the text between ``render(messages[:i])`` (with the assistant header when message ``i``
is an assistant turn, so the header is not trained) and ``render(messages[:i+1])``,
minus trailing whitespace (a weighted non-assistant turn is trained whole, header
included). That span ends with the template's end-of-turn token, so the
model learns to stop. Tokens are then marked through the tokenizer's offset mapping.

Targets are shifted per sequence (``targets[t] = input_ids[t+1]``) before any packing,
so a packed row never predicts one conversation's first token from another's last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from sftdata.errors import UserError

IGNORE = -100


@dataclass
class Example:
    """One tokenised conversation; ``weights[t]`` is the loss weight of ``targets[t]``."""

    input_ids: list[int]
    targets: list[int]
    weights: list[float]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained(self) -> int:
        """Number of trained target tokens."""
        return sum(1 for w in self.weights if w > 0)


@dataclass
class Tokenised:
    """The result of tokenising a record list: examples, plus drops counted by reason."""

    examples: list[Example] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: int = 0


def fallback_template() -> str:
    """The bundled ChatML template (templates/chatml.jinja, shipped in the wheel)."""
    return resources.files("sftdata.templates").joinpath("chatml.jinja").read_text(encoding="utf-8")


def prepare_tokenizer(tokenizer: Any, chat_template: str | Path | None = None) -> Any:
    """Set a chat template from a file, or ChatML when the tokenizer has none; set a pad id."""
    if chat_template:
        path = Path(chat_template)
        if not path.is_file():
            raise UserError(f"chat template not found: {path}")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = fallback_template()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("the trainer needs a fast tokenizer (offset mapping) for its loss masks")
    return tokenizer


def template_messages(messages: list[dict]) -> list[dict]:
    """Canonical messages as chat templates expect them (tool-call arguments as dicts)."""
    out = []
    for m in messages:
        msg = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                args = call["function"]["arguments"]
                try:
                    parsed = json.loads(args) if isinstance(args, str) else args
                except ValueError:
                    parsed = args
                calls.append({"id": call.get("id"), "type": "function",
                              "function": {"name": call["function"]["name"], "arguments": parsed}})
            msg["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if m.get(key):
                msg[key] = m[key]
        out.append(msg)
    return out


def render(tokenizer: Any, messages: list[dict], tools: list | None = None,
           add_generation_prompt: bool = False) -> str:
    """The chat template's text for ``messages`` ("" for no messages)."""
    if not messages:
        return ""
    kwargs = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )


def turn_weights(messages: list[dict], train_on: str) -> list[float]:
    """The loss weight of each message under a ``train_on`` mode."""
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    weights = []
    for i, m in enumerate(messages):
        if train_on == "all":
            w = 1.0
        elif train_on == "last":
            w = 1.0 if assistant and i == assistant[-1] else 0.0
        elif train_on == "weight":
            default = 1.0 if m["role"] == "assistant" else 0.0
            w = default if m.get("weight") is None else float(m["weight"])
        else:
            w = 1.0 if m["role"] == "assistant" else 0.0
        weights.append(max(w, 0.0))
    return weights


def message_spans(tokenizer: Any, messages: list[dict], tools: list | None = None
                  ) -> tuple[str, list[tuple[int, int, int]]]:
    """The full text and, per message, ``(trained_start, trained_end, turn_end)`` chars.

    ``turn_end`` is where the next message's text starts (the whole-turn cut point).
    """
    msgs = template_messages(messages)
    full = render(tokenizer, msgs, tools)
    spans, cursor = [], 0
    for i, m in enumerate(msgs):
        is_assistant = m["role"] == "assistant"
        head = render(tokenizer, msgs[:i], tools, add_generation_prompt=is_assistant)
        upto = render(tokenizer, msgs[: i + 1], tools)
        if full.startswith(head) and full.startswith(upto) and len(head) <= len(upto):
            start, end = len(head), len(upto)
        else:
            # Templates that rewrite earlier turns (e.g. dropping reasoning) are not
            # prefix-stable: find the content itself after the previous turn instead.
            # A turn whose text the template rewrote cannot be located: it is not trained.
            found = full.find(m["content"], cursor) if m["content"] else -1
            if found < 0:
                spans.append((cursor, cursor, cursor))
                continue
            start, end = found, found + len(m["content"])
            eot = tokenizer.eos_token or ""
            nxt = full.find(eot, end) if eot else -1
            if nxt >= 0 and not full[end:nxt].strip():
                end = nxt + len(eot)
        turn_end = max(end, cursor)
        trained_end = start + len(full[start:end].rstrip())
        spans.append((start, trained_end, turn_end))
        cursor = turn_end
    return full, spans


def tokenise(tokenizer: Any, record: dict, max_length: int, train_on: str = "assistant"
             ) -> tuple[Example | None, str | None, bool]:
    """One record -> ``(example, drop_reason, truncated)``; exactly one of the first two is set."""
    messages = record["messages"]
    try:
        full, spans = message_spans(tokenizer, messages, record.get("tools"))
    except Exception as exc:  # a template may reject a conversation shape
        return None, f"template_error:{type(exc).__name__}", False
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    starts = [o[0] for o in offsets]
    token_w = [0.0] * len(ids)
    for (s, e, _), w in zip(spans, turn_weights(messages, train_on)):
        if w > 0:
            for t, c in enumerate(starts):
                if s <= c < e:
                    token_w[t] = w
    if train_on == "all":
        token_w = [1.0] * len(ids)
    truncated = len(ids) > max_length
    if truncated:
        cut = max_length
        # Cut at the latest message boundary that fits, so no turn is left half-trained.
        for _, _, turn_end in reversed(spans):
            n = next((t for t, c in enumerate(starts) if c >= turn_end), len(ids))
            if 0 < n <= max_length and any(token_w[1:n]):
                cut = n
                break
        ids, token_w = ids[:cut], token_w[:cut]
    # Target t is token t+1; the first token of a sequence is never a target.
    targets = ids[1:] + [IGNORE]
    weights = token_w[1:] + [0.0]
    if not any(w > 0 for w in weights):
        return None, "no_trained_tokens", truncated
    return Example(ids, targets, weights), None, truncated


def tokenise_records(tokenizer: Any, records: Iterable[dict], max_length: int,
                     train_on: str = "assistant") -> Tokenised:
    """Tokenise every record; those with nothing left to train are dropped and counted."""
    out = Tokenised()
    for record in records:
        example, reason, truncated = tokenise(tokenizer, record, max_length, train_on)
        out.truncated += int(truncated)
        if example is None:
            out.dropped[reason] = out.dropped.get(reason, 0) + 1
        else:
            out.examples.append(example)
    return out


def trained_text(tokenizer: Any, example: Example) -> list[str]:
    """Decode the trained target tokens, one string per contiguous run (for tests and debugging)."""
    runs, current = [], []
    for tok, w in zip(example.targets, example.weights):
        if w > 0:
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]

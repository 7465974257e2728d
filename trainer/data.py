"""Canonical records -> token ids, next-token targets and per-token loss weights.

A conversation is rendered whole with the tokenizer's chat template (the bundled ChatML
when it has none) and tokenised once; trainer/masks.py finds which characters each
trained turn owns, and every token overlapping them trains (see that module for how).

Which turns train (one definition, used by the trainer, ``sftdata masks`` and scoring):

- ``train_on: assistant`` (default): every message whose role is in ``train_roles``
  (default assistant); ``train_on: last``: only the last of them, earlier turns are
  context (LLaMA-Factory's ``mask_history``); ``train_on: weight``: as ``assistant``, and
  any other message with an explicit ``weight`` > 0 trains too; ``train_on: all``: every
  token (weights ignored).
- A message's ``weight`` scales the loss of its tokens in every mode but ``all``:
  0 = not trained, 1 = as usual, 0.5 = half the pull. The step loss is divided by the
  number of trained tokens (weight > 0), not by the sum of weights, so down-weighting
  a whole step does make it count less.

Reasoning: when a template drops the ``<think>`` text of earlier turns (Qwen3,
DeepSeek-R1), ``split_turns: auto`` (default) trains each such turn in an example of its
own that ends at it, where the template keeps its reasoning, exactly as the model sees
the conversation when it writes that turn; the rest of the conversation stays one
example. ``never`` trains every turn as written in the whole conversation (without
reasoning, counted as ``reasoning_not_rendered``); ``always`` makes one example per
trained turn.

Targets are shifted per sequence (``targets[t] = input_ids[t+1]``) before any packing,
so a packed row never predicts one conversation's first token from another's last.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from sftdata.errors import UserError

from .chat import Renderer, template_messages
from .masks import Located, TemplateError, locate, token_range

IGNORE = -100
BUNDLED_TEMPLATES = {"chatml": "chatml.jinja", "chatml-tools": "chatml_tools.jinja"}


@dataclass
class Example:
    """One tokenised conversation; ``weights[t]`` is the loss weight of ``targets[t]``."""

    input_ids: list[int]
    targets: list[int]
    weights: list[float]
    record_id: str | None = None
    turns: tuple[int, ...] = ()  # indices of the messages trained in this example

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained(self) -> int:
        """Number of trained target tokens."""
        return sum(1 for w in self.weights if w > 0)


@dataclass
class MaskOptions:
    """How turns become trained tokens (the TrainConfig fields of the same names)."""

    train_on: str = "assistant"
    train_roles: tuple[str, ...] = ("assistant",)
    train_on_eot: str = "turn"  # turn | last | none
    split_turns: str = "auto"   # auto | never | always
    chat_template_kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Any) -> "MaskOptions":
        return cls(cfg.train_on, tuple(cfg.train_roles), cfg.train_on_eot, cfg.split_turns,
                   dict(cfg.chat_template_kwargs))


@dataclass
class RecordMasks:
    """Everything tokenising one record produced: examples, or why there are none."""

    examples: list[Example] = field(default_factory=list)
    dropped: str | None = None
    detail: str | None = None
    truncated: bool = False
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (message index, warning code)
    trained_turns: int = 0
    split: list[int] = field(default_factory=list)  # turns trained in examples of their own
    views: list[Located] = field(default_factory=list)  # rendered text per example (keep_text=True)


@dataclass
class Tokenised:
    """The result of tokenising a record list: examples, plus drops and warnings counted by reason."""

    examples: list[Example] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    warnings: Counter = field(default_factory=Counter)
    trained_turns: int = 0
    rejects: list[dict] = field(default_factory=list)  # {"index", "id", "reason", "detail"}
    warned: list[tuple[int, int, str]] = field(default_factory=list)  # (record index, message index, code)


def fallback_template(name: str = "chatml") -> str:
    """A template shipped in sftdata.templates: ``chatml`` (plain) or ``chatml-tools``."""
    return resources.files("sftdata.templates").joinpath(BUNDLED_TEMPLATES[name]).read_text(encoding="utf-8")


def prepare_tokenizer(tokenizer: Any, chat_template: str | Path | None = None) -> Any:
    """Set a chat template (a file, or a bundled name), or ChatML when the tokenizer has none; set a pad id."""
    if chat_template:
        path = Path(chat_template)
        if path.is_file():
            tokenizer.chat_template = path.read_text(encoding="utf-8")
        elif str(chat_template) in BUNDLED_TEMPLATES:
            tokenizer.chat_template = fallback_template(str(chat_template))
        else:
            raise UserError(f"chat template not found: {path} (a file, or one of: {', '.join(BUNDLED_TEMPLATES)})")
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = fallback_template()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("the trainer needs a fast tokenizer (offset mapping) for its loss masks")
    return tokenizer


def render(tokenizer: Any, messages: list[dict], tools: list | None = None,
           add_generation_prompt: bool = False, **template_kwargs: Any) -> str:
    """The chat template's text for ``messages`` ("" for no messages)."""
    return Renderer(tokenizer, template_kwargs)(messages, tools, add_generation_prompt)


def turn_weights(messages: list[dict], train_on: str = "assistant",
                 train_roles: Iterable[str] = ("assistant",)) -> list[float]:
    """The loss weight of each message under ``train_on`` (see the module docstring)."""
    roles = set(train_roles)
    trainable = [i for i, m in enumerate(messages) if m["role"] in roles]
    weights = []
    for i, m in enumerate(messages):
        asked = m.get("weight")
        if train_on == "all":
            w = 1.0
        elif m["role"] not in roles:
            w = float(asked) if train_on == "weight" and asked is not None else 0.0
        elif train_on == "last" and i != trainable[-1]:
            w = 0.0
        else:
            w = 1.0 if asked is None else float(asked)
        weights.append(max(w, 0.0))
    return weights


def tokenise(tokenizer: Any, record: dict, max_length: int, train_on: str = "assistant", **options: Any
             ) -> tuple[Example | None, str | None, bool]:
    """One record -> ``(example, drop_reason, truncated)`` for the whole conversation.

    Exactly one of the first two is set. ``options`` are MaskOptions fields; this never
    splits turns (``split_turns`` is ``never``): ``tokenise_records`` is what the
    trainer uses and gives the same tokens whenever nothing needs splitting.
    """
    opts = MaskOptions(train_on=train_on, **{**options, "split_turns": "never"})
    result = tokenise_record(Renderer(tokenizer, opts.chat_template_kwargs), record, max_length, opts)
    return (result.examples[0] if result.examples else None), result.dropped, result.truncated


def tokenise_records(tokenizer: Any, records: Iterable[dict], max_length: int,
                     train_on: str = "assistant", **options: Any) -> Tokenised:
    """Tokenise every record; those with nothing left to train are counted and listed as rejects."""
    opts = MaskOptions(train_on=train_on, **options)
    renderer = Renderer(tokenizer, opts.chat_template_kwargs)
    out = Tokenised()
    for index, record in enumerate(records):
        result = tokenise_record(renderer, record, max_length, opts)
        out.truncated += int(result.truncated)
        out.trained_turns += result.trained_turns
        for message_index, code in result.warnings:
            out.warnings[code] += 1
            out.warned.append((index, message_index, code))
        if result.dropped:
            out.dropped[result.dropped] = out.dropped.get(result.dropped, 0) + 1
            out.rejects.append({"index": index, "id": record.get("id"), "reason": result.dropped,
                                "detail": result.detail})
        out.examples += result.examples
    return out


def tokenise_record(renderer: Renderer, record: dict, max_length: int, opts: MaskOptions,
                    keep_text: bool = False) -> RecordMasks:
    """One record -> its examples (one, or more when turns are split), warnings and drop reason."""
    messages, tools = record["messages"], record.get("tools")
    weights = turn_weights(messages, opts.train_on, opts.train_roles)
    result = RecordMasks()
    if not any(weights):
        result.dropped, result.detail = "nothing_to_train", "no message is selected for training"
        return result
    try:
        whole = locate(renderer, messages, tools, weights, find_turns=opts.train_on != "all")
    except TemplateError as exc:
        result.dropped, result.detail = "template_error", str(exc)
        return result
    trained = [t for t in whole.turns if t.span is not None]
    pieces: list[tuple[list[dict], list[float], Located]] = []
    if opts.split_turns == "always" and opts.train_on != "all":
        for t in trained:
            sub = _alone(renderer, messages, tools, t.index, t.weight)
            pieces.append(sub if sub else (messages, _only(weights, t.index), whole))
        result.split = [t.index for t in trained]
    else:
        if opts.split_turns == "auto":
            for t in trained:
                if "reasoning_not_rendered" in t.warnings:
                    sub = _alone(renderer, messages, tools, t.index, t.weight)
                    if sub and "reasoning_not_rendered" not in sub[2].turns[t.index].warnings:
                        pieces.append(sub)
                        result.split.append(t.index)
                        t.warnings.remove("reasoning_not_rendered")
                        t.span = None
        if any(t.span is not None for t in whole.turns) or opts.train_on == "all":
            pieces.insert(0, (messages, weights, whole))
    for t in whole.turns:
        result.warnings += [(t.index, w) for w in t.warnings]
    result.trained_turns = len(trained) if opts.train_on != "all" else len(messages)
    for msgs, wts, located in pieces:
        example, located, truncated = _fit(renderer, msgs, tools, wts, located, max_length, opts)
        result.truncated |= truncated
        if example is not None:
            example.record_id = record.get("id")
            result.examples.append(example)
            if keep_text:
                result.views.append(located)
    if not result.examples:
        untrained = sorted({w for _, w in result.warnings})
        if trained:
            result.dropped, result.detail = "too_long", f"no trained token fits in max_length={max_length}"
        else:
            result.dropped = "untrainable_turns"
            result.detail = ", ".join(untrained) or "no turn selected for training could be trained"
    return result


def _only(weights: list[float], index: int) -> list[float]:
    return [w if i == index else 0.0 for i, w in enumerate(weights)]


def _alone(renderer: Renderer, messages: list[dict], tools: list | None, index: int, weight: float):
    """The conversation up to ``messages[index]``, training only that turn (None if it cannot render)."""
    msgs = messages[:index + 1]
    wts = [0.0] * index + [weight]
    try:
        located = locate(renderer, msgs, tools, wts)
    except TemplateError:
        return None
    return (msgs, wts, located) if located.turns[index].span is not None else None


def _token_weights(located: Located, opts: MaskOptions) -> list[float]:
    """Per input token: the weight of the turn it belongs to (0 outside trained turns)."""
    ends = [e for _, e in located.offsets]
    if opts.train_on == "all":
        return [1.0] * len(located.input_ids)
    token_w = [0.0] * len(located.input_ids)
    trained = [t for t in located.turns if t.span is not None]
    for n, turn in enumerate(trained):
        for t in token_range(located.offsets, ends, *turn.span):
            token_w[t] = turn.weight
        drop_eot = opts.train_on_eot == "none" or (opts.train_on_eot == "last" and n != len(trained) - 1)
        if drop_eot and turn.end_of_turn:
            for t in token_range(located.offsets, ends, *turn.end_of_turn):
                if located.offsets[t][0] >= turn.end_of_turn[0]:
                    token_w[t] = 0.0
    return token_w


def _fit(renderer: Renderer, messages: list[dict], tools: list | None, weights: list[float],
         located: Located, max_length: int, opts: MaskOptions) -> tuple[Example | None, Located, bool]:
    """The example of one rendering, cut to ``max_length``.

    When only the final trained turn trains (``train_on: last``, split examples) earlier
    turns are dropped from the left, a user turn at a time (a leading system prompt is
    kept), until it fits. Otherwise the conversation is cut at the end of the last whole
    trained turn that fits, or at ``max_length`` when not even the first one does.
    """
    truncated = len(located.input_ids) > max_length
    trained = [t.index for t in located.turns if t.span is not None]
    if truncated and trained and opts.train_on != "all" and trained == [trained[-1]]:
        head = 1 if messages and messages[0]["role"] == "system" else 0
        for k in range(head + 1, trained[-1]):
            if messages[k]["role"] != "user":
                continue
            msgs, wts = messages[:head] + messages[k:], weights[:head] + weights[k:]
            try:
                shorter = locate(renderer, msgs, tools, wts)
            except TemplateError:
                continue
            if any(t.span for t in shorter.turns) and len(shorter.input_ids) <= max_length:
                located = shorter
                break
    token_w = _token_weights(located, opts)
    ids = located.input_ids
    if len(ids) > max_length:
        cut = max_length
        ends = [e for _, e in located.offsets]
        for turn in reversed([t for t in located.turns if t.span is not None]):
            n = token_range(located.offsets, ends, *turn.span).stop
            if 0 < n <= max_length and any(token_w[1:n]):
                cut = n
                break
        ids, token_w = ids[:cut], token_w[:cut]
    # Target t is token t+1; the first token of a sequence is never a target.
    targets = ids[1:] + [IGNORE]
    weights_out = token_w[1:] + [0.0]
    if not any(w > 0 for w in weights_out):
        return None, located, truncated
    turns = tuple(t.index for t in located.turns if t.span is not None)
    return Example(list(ids), targets, weights_out, turns=turns), located, truncated


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


__all__ = ["IGNORE", "Example", "MaskOptions", "RecordMasks", "Tokenised", "fallback_template",
           "prepare_tokenizer", "render", "template_messages", "tokenise", "tokenise_record",
           "tokenise_records", "trained_text", "turn_weights"]

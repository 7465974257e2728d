"""Where each message sits in its rendered conversation, and which characters train.

The conversation is rendered **once, whole**; that text is what gets tokenised and
trained, so earlier turns look exactly as the template writes them in this conversation
(reasoning stripped, system prompt moved...), never as a shorter prefix would render.

*A message's own text* is found by rendering the conversation again with that message's
content and tool calls replaced by a stand-in character (chat.perturbed): the two
renderings differ exactly where the template wrote that message, so the common prefix
and suffix of the two strings bound it. No text search: an answer given twice, or an
answer the template trimmed or rewrote, is located where it was written.

*A trained assistant turn* is that text widened on both sides by what the model writes
around it. It starts where the prompt the model is given for it at inference,
``render(messages[:i], add_generation_prompt=True)``, stops matching the conversation
(after the previous message's text); the assistant header, Mistral's ``[/INST]`` or
DeepSeek's ``<think>\\n`` prefill are prompt, Mistral's ``[TOOL_CALLS]`` and Qwen3's
``<think>`` block are not. A turn with no message before it falls back to the end of
the template's assistant header (chat.profile). It ends with the template's own
end-of-turn text after it (before the next message's text). Every token that overlaps
the span trains.

Templates with ``{% generation %}`` blocks say what is trained themselves: those blocks
are used (transformers' ``return_assistant_tokens_mask``), each one given to the turn
whose text it holds.

Nothing is guessed silently: every turn that should train but cannot (or trains without
an end-of-turn, or without its header found) carries a warning code (see WARNINGS).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .chat import Renderer, common_prefix, mark_for, perturbed, profile, template_messages, template_tools

# Warning codes. BLOCKING ones mean a turn that should train trains nothing or the wrong
# thing because of the chat template; `sftdata train` refuses to start on them.
WARNINGS = {
    "empty_turn": "the turn has no content and no tool calls: not trained",
    "not_rendered": "the template writes none of the turn's content: not trained",
    "tool_calls_not_rendered": "the template does not write the turn's tool calls: not trained",
    "cannot_locate": "the turn's text could not be located in the rendered conversation: not trained",
    "no_generation_block": "the template's {% generation %} blocks do not cover the turn: not trained",
    "header_not_found": "the assistant header before the turn was not found: trained from its text",
    "no_end_of_turn": "no end-of-turn text after the turn: trained without it (the model does not learn to stop)",
    "reasoning_not_rendered": "the template drops the turn's reasoning: trained as written without it",
}
BLOCKING = frozenset({"not_rendered", "tool_calls_not_rendered", "cannot_locate", "no_generation_block",
                      "header_not_found", "no_end_of_turn"})


class TemplateError(Exception):
    """The chat template refused the conversation (e.g. "System role not supported")."""


@dataclass
class Turn:
    """One message of a rendered conversation."""

    index: int
    role: str
    weight: float                         # the loss weight asked for (0 = not to be trained)
    data: tuple[int, int] | None = None   # the message's own text in the rendering (None: not written)
    span: tuple[int, int] | None = None   # trained characters (None: not trained)
    end_of_turn: tuple[int, int] | None = None  # the end-of-turn characters inside `span`
    warnings: list[str] = field(default_factory=list)


@dataclass
class Located:
    """A rendered conversation, its tokens and its turns."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    turns: list[Turn]


def own_text(message: dict) -> bool:
    return bool((message.get("content") or "").strip() or message.get("tool_calls"))


def render_conversation(renderer: Renderer, messages: list[dict], tools: list | None) -> tuple[list[dict], str]:
    """Template messages and their rendering; a turn that only calls tools is tried without,
    then with, an empty ``content`` (templates differ in which they accept)."""
    last_error: Exception | None = None
    for omit in (True, False):
        msgs = template_messages(messages, omit_empty_content=omit)
        try:
            return msgs, renderer(msgs, tools)
        except Exception as exc:  # the template's own raise_exception, or a type error in it
            last_error = exc
    text = str(last_error).splitlines()[0][:200] if str(last_error) else ""
    # The class says what refused: the sandbox (SecurityError), the template's own
    # raise_exception, or a bug in it.
    raise TemplateError(f"{type(last_error).__name__}: {text}" if text else type(last_error).__name__)


def _data_span(renderer: Renderer, msgs: list[dict], i: int, tools: list | None, full: str) -> tuple[int, int] | None:
    changed = list(msgs)
    changed[i] = perturbed(msgs[i], mark_for(msgs[i]))
    other = renderer(changed, tools)
    start = common_prefix(full, other)
    tail = common_prefix(full[start:][::-1], other[start:][::-1])
    end = len(full) - tail
    return (start, end) if end > start else None


def locate(renderer: Renderer, messages: list[dict], tools: list | None, weights: list[float],
           find_turns: bool = True) -> Located:
    """Render ``messages`` whole and find each message's text and each trained turn's span
    (only the rendering and its tokens when not ``find_turns``: every token trains)."""
    tools = template_tools(tools)
    msgs, text = render_conversation(renderer, messages, tools)
    turns = [Turn(i, m["role"], w) for i, (m, w) in enumerate(zip(messages, weights))]
    if not find_turns:
        enc = renderer.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return Located(text, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], turns)
    for turn, message in zip(turns, msgs):
        if own_text(message):
            try:
                turn.data = _data_span(renderer, msgs, turn.index, tools, text)
            except Exception:
                turn.warnings.append("cannot_locate")
    _check_order(turns)
    enc = renderer.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    located = Located(text, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], turns)
    wanted = [t for t in turns if t.weight > 0 and not t.warnings]
    for turn in wanted:
        _check_rendered(turn, messages[turn.index], text)
    wanted = [t for t in wanted if not t.warnings]
    if renderer.has_generation_markers:
        _spans_from_generation_blocks(renderer, msgs, tools, located, wanted)
    else:
        for turn in wanted:
            _span_from_text(renderer, msgs, tools, located, turn)
    for turn in turns:
        if turn.span is not None:
            _check_reasoning(turn, messages[turn.index], text)
        if turn.weight <= 0:  # only turns meant to train are warned about
            turn.warnings.clear()
    return located


def _check_order(turns: list[Turn]) -> None:
    """Each message's text must come after the previous one's; overlaps cannot be told apart."""
    placed = [t for t in turns if t.data is not None]
    for a, b in zip(placed, placed[1:]):
        if b.data[0] < a.data[1]:
            for t in (a, b):
                if "cannot_locate" not in t.warnings:
                    t.warnings.append("cannot_locate")
                t.data = None


def _check_rendered(turn: Turn, message: dict, text: str) -> None:
    if not own_text(message):
        turn.warnings.append("empty_turn")
    elif turn.data is None:
        turn.warnings.append("tool_calls_not_rendered" if message.get("tool_calls") and not
                             (message.get("content") or "").strip() else "not_rendered")
    elif any(c["function"]["name"] not in text[turn.data[0]:turn.data[1]] for c in message.get("tool_calls") or []):
        turn.warnings.append("tool_calls_not_rendered")


def _check_reasoning(turn: Turn, message: dict, text: str) -> None:
    """The reasoning must be written before the answer inside the trained span."""
    reasoning = reasoning_of(message)
    if not reasoning:
        return
    written = text[turn.span[0]:turn.span[1]]
    answer = (message.get("content") or "").split("</think>")[-1].strip()
    before = written[:written.rfind(answer)] if answer and answer in written else written
    if reasoning not in before:
        turn.warnings.append("reasoning_not_rendered")


def reasoning_of(message: dict) -> str:
    """The ``<think>...</think>`` text of an assistant message ("" when it has none)."""
    content = message.get("content") or ""
    if message.get("role") != "assistant" or "</think>" not in content:
        return ""
    return content.split("</think>")[0].split("<think>")[-1].strip()


def _neighbours(turns: list[Turn], turn: Turn, text: str) -> tuple[int, int]:
    """End of the previous message's text and start of the next one's (the turn's window)."""
    before = [t.data[1] for t in turns[:turn.index] if t.data is not None]
    after = [t.data[0] for t in turns[turn.index + 1:] if t.data is not None]
    return (before[-1] if before else 0), (after[0] if after else len(text))


def _span_from_text(renderer: Renderer, msgs: list[dict], tools: list | None, located: Located,
                    turn: Turn) -> None:
    text, (start, end) = located.text, turn.data
    lo, hi = _neighbours(located.turns, turn, text)
    if turn.role == "assistant":
        prof = profile(renderer)
        start = _after_prompt(renderer, msgs, tools, located, turn, lo)
        if start is None:
            start = _after_header(located, prof.header_options, lo, turn, renderer.special_ids)
        eot = prof.end_of_turn
        at = text.find(eot, end, hi) if eot else -1
        if at >= 0:
            turn.end_of_turn = (at, at + len(eot))
            end = at + len(eot)
        else:
            turn.warnings.append("no_end_of_turn")
    turn.span = (start, end)


def _after_prompt(renderer: Renderer, msgs: list[dict], tools: list | None, located: Located,
                  turn: Turn, lo: int) -> int | None:
    """Where the prompt the model is given for this turn stops matching the conversation.

    The prompt is ``render(messages[:i], add_generation_prompt=True)``; what it writes
    after the last earlier message's own text (that turn's closing, this turn's header:
    ``[/INST]``, ``<|im_end|>\\n<|im_start|>assistant\\n``) is matched against the
    conversation there. None when no earlier message has text of its own.
    """
    i = turn.index
    prev = next((t for t in reversed(located.turns[:i]) if t.data is not None), None)
    if prev is None:
        return None
    try:
        prompt = renderer(msgs[:i], tools, add_generation_prompt=True)
        if prompt.startswith(located.text[:lo]):
            tail = prompt[lo:]
        else:  # the template writes the history differently when it ends here (Mistral's system prompt)
            changed = list(msgs[:i])
            changed[prev.index] = perturbed(msgs[prev.index], mark_for(msgs[prev.index]))
            other = renderer(changed, tools, add_generation_prompt=True)
            head = common_prefix(prompt, other)
            tail = prompt[len(prompt) - common_prefix(prompt[head:][::-1], other[head:][::-1]):]
    except Exception:
        return None
    matched = common_prefix(located.text[lo:turn.data[0]], tail)
    return lo + matched if matched or not tail else None


def _after_header(located: Located, options: tuple[str, ...], lo: int, turn: Turn,
                  special: frozenset[int]) -> int:
    """Fallback: the end of the longest piece of the generation prompt before the turn's text."""
    for header in options:
        at = located.text.rfind(header, lo, turn.data[0])
        if at >= 0:
            return at + len(header)
    gap = [tok for tok, (s, e) in zip(located.input_ids, located.offsets) if s >= lo and e <= turn.data[0]]
    if not options and all(tok in special for tok in gap):  # nothing but BOS-like tokens before it
        return turn.data[0]
    turn.warnings.append("header_not_found")
    return turn.data[0]


def _spans_from_generation_blocks(renderer: Renderer, msgs: list[dict], tools: list | None,
                                  located: Located, wanted: list[Turn]) -> None:
    mask = renderer.assistant_mask(msgs, tools)
    if len(mask) != len(located.input_ids):
        for turn in wanted:
            turn.warnings.append("cannot_locate")
        return
    runs, current = [], None
    for (s, e), m in zip(located.offsets, mask):
        if m and current is not None and s <= current[1]:
            current[1] = max(current[1], e)
        elif m:
            current = [s, e]
            runs.append(current)
        else:
            current = None
    eot = profile(renderer).end_of_turn
    for turn in wanted:
        lo, hi = _neighbours(located.turns, turn, located.text)
        mine = [r for r in runs if r[0] < hi and r[1] > lo and r[0] < turn.data[1] and r[1] > turn.data[0]]
        if not mine:
            turn.warnings.append("no_generation_block")
            continue
        turn.span = (mine[0][0], mine[-1][1])
        at = located.text.find(eot, turn.data[1], turn.span[1]) if eot else -1
        if at >= 0:
            turn.end_of_turn = (at, at + len(eot))


def token_range(offsets: list[tuple[int, int]], ends: list[int], start: int, end: int) -> range:
    """Indices of the tokens whose characters overlap ``[start, end)`` (``ends``: the offsets' ends, in order)."""
    first = bisect.bisect_right(ends, start)
    last = first
    while last < len(offsets) and offsets[last][0] < end:
        last += 1
    return range(first, last)

"""Chat templates as the trainer sees them: the messages a template is given, one render
function, and a template's *profile* (its assistant header and end-of-turn text).

The profile is read off the template itself by rendering a probe conversation of four
one-character messages (①②③④), so nothing here knows any model family by name:

- ``end_of_turn``: what the template writes after an answer whatever comes next
  (``<|im_end|>``, ``<|eot_id|>``, ``</s>``, ``<|end|>``), found as the common start of
  the text after answer ② (a user turn follows) and after answer ④ (the conversation
  ends), cut back to a token end, trailing whitespace removed. It is the template's own,
  not ``eos_token``.
- ``header``: the assistant header the model is given rather than writes
  (``<|im_start|>assistant\\n``, ``<start_of_turn>model\\n``...): the longest piece of the
  generation prompt, cut at a token end, that the template also writes before an answer.
  Empty for templates whose answers follow the user turn's own closing (Mistral's
  ``[/INST]``, Phi-4's ``<|im_sep|>``). masks.py only needs it for a turn with no message
  before it; every other turn starts where its own prompt stops matching.

Rendering goes through transformers' compiled (sandboxed) template when the installed
version exposes it, checked once per template against ``apply_chat_template``; it is four
times faster, which matters because the masks render each conversation once per message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PROBE = ("\u2460", "\u2461", "\u2462", "\u2463")  # ① ② ③ ④
MARKS = ("\u2464", "\u2465", "\u2466", "\u2467", "\u2468")  # ⑤..⑨: text that stands in for a message's own
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def template_tools(tools: list | None) -> list | None:
    """Tool specs as chat templates expect them: ``{"type": "function", "function": spec}``."""
    if not tools:
        return None
    return [t if "function" in t or "name" not in t else {"type": "function", "function": t} for t in tools]


def template_messages(messages: list[dict], omit_empty_content: bool = True) -> list[dict]:
    """Canonical messages as chat templates expect them.

    Tool-call arguments become dicts. A turn that only calls tools has no ``content`` key
    (the OpenAI wire format's null content; transformers 5 drops ``None`` itself) unless
    ``omit_empty_content`` is off, for templates that need one. A tool call without an id
    gets a 9-character one (what Mistral's template demands) and a tool result without a
    ``tool_call_id`` answers the oldest unanswered call.
    """
    out, pending = [], []
    for i, m in enumerate(messages):
        msg: dict[str, Any] = {"role": m["role"]}
        content = m.get("content") or ""
        calls = m.get("tool_calls") or []
        if content or not calls or not omit_empty_content:
            msg["content"] = content
        if calls:
            msg["tool_calls"] = []
            for k, call in enumerate(calls):
                call_id = call.get("id") or f"c{i:05d}{k:03d}"
                pending.append(call_id)
                msg["tool_calls"].append({"id": call_id, "type": "function", "function": {
                    "name": call["function"]["name"], "arguments": _arguments(call["function"]["arguments"])}})
        if m.get("name"):
            msg["name"] = m["name"]
        if m["role"] == "tool":
            answered = m.get("tool_call_id") or (pending[0] if pending else None)
            if answered in pending:
                pending.remove(answered)
            if answered:
                msg["tool_call_id"] = answered
        out.append(msg)
    return out


def _arguments(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args


def perturbed(message: dict, mark: str) -> dict:
    """``message`` with its own text (content, tool-call names and arguments) replaced by ``mark``."""
    out = dict(message)
    if out.get("content"):
        out["content"] = mark
    if out.get("tool_calls"):
        out["tool_calls"] = [{**c, "function": {"name": mark, "arguments": (
            {mark: mark} if not isinstance(c["function"]["arguments"], str) else json.dumps({mark: mark}))}}
            for c in out["tool_calls"]]
    return out


def mark_for(message: dict) -> str:
    """A stand-in character that the message's own text does not contain."""
    text = json.dumps(message, ensure_ascii=False)
    return next((m for m in MARKS if m not in text), MARKS[0])


_SAME_AS_TRANSFORMERS: dict[tuple, bool] = {}


class Renderer:
    """Render conversations with a tokenizer's chat template and extra template kwargs."""

    def __init__(self, tokenizer: Any, template_kwargs: dict | None = None):
        self.tokenizer = tokenizer
        self.template = tokenizer.chat_template
        self.kwargs = dict(template_kwargs or {})
        self._variables = {**tokenizer.special_tokens_map, **self.kwargs}  # what apply_chat_template passes
        self._compiled = _compiled(self.template)
        if self._compiled is not None:  # keep the fast path only if it renders exactly what transformers renders
            key = (self.template, json.dumps(self.kwargs, sort_keys=True, default=str),
                   json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str))
            if key not in _SAME_AS_TRANSFORMERS:
                probe = [{"role": "user", "content": PROBE[0]}, {"role": "assistant", "content": PROBE[1]}]
                try:
                    _SAME_AS_TRANSFORMERS[key] = self._fast(probe, None, True) == self._slow(probe, None, True)
                except Exception:
                    _SAME_AS_TRANSFORMERS[key] = False
            if not _SAME_AS_TRANSFORMERS[key]:
                self._compiled = None

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of the tokenizer's added tokens (special and control tokens)."""
        if not hasattr(self, "_special_ids"):
            self._special_ids = frozenset(getattr(self.tokenizer, "added_tokens_decoder", {}) or ())
        return self._special_ids

    @property
    def has_generation_markers(self) -> bool:
        return _GENERATION.search(self.template) is not None

    def __call__(self, messages: list[dict], tools: list | None = None,
                 add_generation_prompt: bool = False) -> str:
        """The template's text for ``messages`` ("" for no messages); template errors propagate."""
        if not messages:
            return ""
        if self._compiled is not None:
            return self._fast(messages, tools, add_generation_prompt)
        return self._slow(messages, tools, add_generation_prompt)

    def _fast(self, messages, tools, add_generation_prompt) -> str:
        return self._compiled.render(messages=messages, tools=tools, documents=None,
                                     add_generation_prompt=add_generation_prompt, **self._variables)

    def _slow(self, messages, tools, add_generation_prompt) -> str:
        kwargs = {"tools": tools} if tools else {}
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  **kwargs, **self.kwargs)

    def assistant_mask(self, messages: list[dict], tools: list | None = None) -> list[int]:
        """Per-token 0/1 from the template's ``{% generation %}`` blocks (transformers' own tracking)."""
        kwargs = {"tools": tools} if tools else {}
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                 return_assistant_tokens_mask=True, **kwargs, **self.kwargs)
        return list(out["assistant_masks"])


def _compiled(template: str) -> Any:
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:
        return None
    try:
        return _compile_jinja_template(template)
    except Exception:
        return None


@dataclass(frozen=True)
class TemplateProfile:
    """What a chat template writes around an answer (see the module docstring)."""

    header: str
    header_options: tuple[str, ...]  # longest first: the generation prompt cut at token ends, down to `header`
    end_of_turn: str  # "" also when the probe conversation could not be rendered or read


_PROFILES: dict[tuple, TemplateProfile] = {}


def profile(renderer: Renderer) -> TemplateProfile:
    """The template's profile, computed once per (template, kwargs, special tokens)."""
    key = (renderer.template, json.dumps(renderer.kwargs, sort_keys=True, default=str),
           json.dumps(renderer.tokenizer.special_tokens_map, sort_keys=True, default=str))
    if key not in _PROFILES:
        _PROFILES[key] = _probe(renderer)
    return _PROFILES[key]


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on slice equality: C-speed comparisons
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _probe(renderer: Renderer) -> TemplateProfile:
    a, b, c, d = PROBE
    roles = ("user", "assistant", "user", "assistant")
    try:
        text = renderer([{"role": r, "content": x} for r, x in zip(roles, PROBE)])
        asked = renderer([{"role": "user", "content": a}], add_generation_prompt=True)
        plain = renderer([{"role": "user", "content": a}])
    except Exception:
        return TemplateProfile("", (), "")
    where = [text.find(x) for x in PROBE]
    if any(p < 0 for p in where) or where != sorted(where) or any(text.count(x) != 1 for x in PROBE):
        return TemplateProfile("", (), "")
    after_a, after_b = text[where[0] + 1:where[1]], text[where[1] + 1:where[2]]
    after_d = text[where[3] + 1:]
    # Both are cut back to a token end: "<|end|>\n<|user|>" and "<|end|>\n<|endoftext|>"
    # share "<|end|>\n<|", which is no end-of-turn.
    cut = _token_floor(renderer.tokenizer, text, where[1] + 1 + common_prefix(after_b, after_d)) - where[1] - 1
    end_of_turn = after_b[:max(cut, 0)].rstrip()
    start = _token_floor(renderer.tokenizer, asked, common_prefix(asked, plain))
    prompt = asked[start:]
    # Token ends inside the generation prompt are the places where a header may stop.
    enc = renderer.tokenizer(asked, add_special_tokens=False, return_offsets_mapping=True)
    ends = sorted({e - start for _, e in enc["offset_mapping"] if e > start}, reverse=True)
    options = [prompt[:e] for e in ends]
    header = next((h for h in options if after_a.endswith(h)), "")
    options = options[:options.index(header) + 1] if header else []
    return TemplateProfile(header, tuple(options), end_of_turn)


def _token_floor(tokenizer: Any, text: str, position: int) -> int:
    """The last token boundary of ``text`` at or before ``position``."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    bounds = [0] + [e for _, e in enc["offset_mapping"]]
    return max(b for b in bounds if b <= position)

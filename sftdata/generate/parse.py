"""Parsing model completions: numbered task lists, yes/no answers, and instances.

Completions from small or chatty models are messy: lists restart their numbering, use
bullets, wrap lines, or are cut off by the token limit. The parsers take what they can
and return nothing for what they cannot; they never raise on model text.
"""

from __future__ import annotations

import re

_ITEM_RE = re.compile(r"^\s*(?:(?:task|instruction)\s*)?(\d{1,3})\s*[.):]\s*(.*)$", re.I)
_BULLET_RE = re.compile(r"^\s*[-*\u2022]\s+(.*)$")
_PREFIX_RE = re.compile(r"^(?:(?:new\s+)?(?:task|instruction)\s*\d*\s*[:.-]\s*)", re.I)
_WRAPPERS = "\"'`*_ "


def _clean_item(text: str) -> str:
    text = re.sub(r"^\d{1,3}\s*[.)]\s+", "", text.strip())  # "9. 7) Explain..." twice numbered
    text = _PREFIX_RE.sub("", text)
    text = text.strip(_WRAPPERS).strip()
    return re.sub(r"\s+", " ", text)


def parse_instructions(text: str, truncated: bool = False) -> list[str]:
    """New task instructions from a numbered (or bulleted) list completion.

    Lines that continue an item (no number or bullet) are joined to it; text before the
    first item is ignored unless the whole reply has no list at all, in which case each
    non-empty line counts as one item. A completion cut off by the token limit
    (``truncated``) loses only its last item.

    >>> parse_instructions("9. Name three rivers.\\n10. Explain\\nhow tides work.\\n11. Wri", True)
    ['Name three rivers.', 'Explain how tides work.']
    """
    items: list[str] = []
    current: list[str] | None = None
    saw_marker = False
    for line in text.splitlines():
        match = _ITEM_RE.match(line) or _BULLET_RE.match(line)
        if match:
            saw_marker = True
            if current is not None:
                items.append(" ".join(current))
            current = [match.group(match.lastindex)]
        elif not line.strip():
            if current is not None:
                items.append(" ".join(current))
                current = None
        elif current is not None:
            current.append(line.strip())
    if current is not None:
        items.append(" ".join(current))
    if not saw_marker:
        items = [line for line in text.splitlines() if line.strip()]
    if truncated and items:
        items = items[:-1]
    cleaned = (_clean_item(item) for item in items)
    return [item for item in cleaned if item]


def parse_yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when the answer says neither.

    >>> parse_yes_no(" Yes."), parse_yes_no("no, it is open-ended"), parse_yes_no("maybe")
    (True, False, None)
    """
    match = re.search(r"\b(yes|no)\b", text.lower())
    if match is None:
        return None
    return match.group(1) == "yes"


_LABEL_RE = re.compile(r"^\s*\**\s*(input|output|class label|label)\s*\**\s*:\s*(.*)$", re.I)
_NONE_INPUTS = {"", "<none>", "none", "n/a", "(none)", "no input", "<noinput>", "null"}


def _examples(text: str) -> list[dict[str, str]]:
    """Labelled fields (``Input:``, ``Output:``, ``Class label:``) of each example in
    order; a repeated label starts the next example, a ``Task:`` line ends them all."""
    examples: list[dict[str, list[str]]] = []
    fields: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if re.match(r"^\s*task\s*:", line, re.I):
            break  # the model started inventing another task
        match = _LABEL_RE.match(line)
        if match:
            key = "label" if "label" in match.group(1).lower() else match.group(1).lower()
            if key in fields:
                examples.append(fields)
                fields = {}
            fields[key] = [match.group(2)]
        elif key is not None:
            fields[key].append(line)
    if fields:
        examples.append(fields)
    return [{k: "\n".join(v).strip() for k, v in ex.items()} for ex in examples]


def _fields(text: str) -> dict[str, str]:
    found = _examples(text)
    return found[0] if found else {}


def parse_instance(text: str, output_first: bool) -> tuple[str, str] | None:
    """``(input, output)`` of one generated instance, or None when it does not parse.

    Input-first completions read ``Input: ... Output: ...``; output-first ones (for
    classification tasks) read ``Class label: ... Input: ...`` and the label is the
    output. A missing or ``<none>`` input becomes "".

    >>> parse_instance("Input: <none>\\nOutput: Blue whales.", output_first=False)
    ('', 'Blue whales.')
    >>> parse_instance("Class label: Spam\\nInput: Win a prize now!", output_first=True)
    ('Win a prize now!', 'Spam')
    """
    fields = _fields(text)
    if output_first:
        label = fields.get("label") or fields.get("output")
        if label is None:
            # The prompt ends with "Class label:"; a reply may start with the bare label.
            first, _, rest = text.strip().partition("\n")
            if "input" not in fields or not first or _LABEL_RE.match(first):
                return None
            label = first
        output, input_text = label.strip(), fields.get("input", "")
    else:
        if "output" not in fields:
            return None
        output, input_text = fields["output"], fields.get("input", "")
    if input_text.strip().lower() in _NONE_INPUTS:
        input_text = ""
    return input_text.strip(), output.strip()


def parse_instances(text: str, output_first: bool, truncated: bool = False) -> list[tuple[str, str]]:
    """Every ``(input, output)`` example in a completion (one per repeated label set).

    A completion cut off by the token limit loses its last example when it has several.

    >>> parse_instances("Input: 2+2\\nOutput: 4\\nInput: 3+3\\nOutput: 6", False)
    [('2+2', '4'), ('3+3', '6')]
    """
    out = []
    for fields in _examples(text):
        if output_first:
            label = fields.get("label") or fields.get("output")
            parsed = None if label is None else (fields.get("input", ""), label)
        else:
            parsed = None if "output" not in fields else (fields.get("input", ""), fields["output"])
        if parsed is not None:
            input_text = "" if parsed[0].strip().lower() in _NONE_INPUTS else parsed[0].strip()
            out.append((input_text, parsed[1].strip()))
    if not out:
        single = parse_instance(text, output_first)
        out = [single] if single else []
    if not out and not output_first and text.strip() and not any(
            _LABEL_RE.match(line) for line in text.splitlines()):
        # Models that ignore the format (no labels at all) usually just do the task:
        # that reply is a valid instance of the task with no input.
        out = [("", text.strip())]
    if truncated and len(out) > 1:
        out = out[:-1]
    return out

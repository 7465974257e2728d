"""Checks and helpers shared by the format converters.

Every converter is a pair of pure functions over dicts:
``to_canonical(row) -> {"messages", "tools", "meta"}`` and ``from_canonical(record) -> row``;
both raise ``RecordError(reason)`` for a record they cannot convert.

Nothing is dropped on the way: keys a format does not define go to ``meta`` (record
level) or to the message's ``extra`` (message and turn level, and tool calls), and come
back out where the target format can hold them; where it cannot, the record is a
reject (``not_representable_as_<format>:...``), never a silent loss.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sftdata.errors import RecordError
from sftdata.records import HINTS_KEY

# Deepest nesting of a field value that sftdata accepts (``[[1]]`` is 2 deep): deeper
# data is a reject (``too_deeply_nested``) rather than a crash somewhere downstream.
MAX_DEPTH = 64


def require_str(row: dict, key: str, *, optional: bool = False) -> str | None:
    """``row[key]`` as a string; ``missing_field:key`` / ``not_a_string:key`` otherwise.

    >>> require_str({"output": 3}, "output")
    Traceback (most recent call last):
    ...
    sftdata.errors.RecordError: not_a_string:output
    """
    value = row.get(key)
    if value is None:
        if optional:
            return None
        raise RecordError(f"missing_field:{key}")
    if not isinstance(value, str):
        raise RecordError(f"not_a_string:{key}")
    return value


def require_list(row: dict, key: str) -> list:
    """``row[key]`` as a non-empty list (``missing_field``, ``not_a_list``, ``empty_conversation``)."""
    value = row.get(key)
    if value is None:
        raise RecordError(f"missing_field:{key}")
    if not isinstance(value, list):
        raise RecordError(f"not_a_list:{key}")
    if not value:
        raise RecordError("empty_conversation")
    return value


def require_content(text: str, where: str) -> str:
    """Reject whitespace-only turn text with ``empty_content`` (``where`` says which)."""
    if not text.strip():
        raise RecordError(f"empty_content:{where}" if where else "empty_content")
    return text


def check_value(value: Any, depth: int = 0) -> None:
    """A field value sftdata can carry: JSON-like, finite numbers, at most ``MAX_DEPTH``
    deep (``non_finite_number``, ``too_deeply_nested`` otherwise).

    >>> check_value({"a": [1.5, float("nan")]})
    Traceback (most recent call last):
    ...
    sftdata.errors.RecordError: non_finite_number
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError("non_finite_number")
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise RecordError("too_deeply_nested")
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, (dict, list, float)):
                check_value(item, depth + 1)


def extra_fields(row: dict, known: tuple[str, ...]) -> dict:
    """Everything in the row the format does not define: kept in ``meta``.

    A field named like sftdata's own hints key cannot be told from the hints, so it
    is a reject (``reserved_field:_sftdata``) rather than a silent loss.
    """
    if HINTS_KEY in row:
        raise RecordError(f"reserved_field:{HINTS_KEY}")
    return {k: v for k, v in row.items() if k not in known}


def spread(out: dict, extra: dict, fmt: str) -> dict:
    """Put ``extra`` keys on ``out`` (not sftdata's own hints). A key ``out`` already has
    with another value cannot be written: ``not_representable_as_<fmt>:field_collision:<key>``."""
    for key, value in extra.items():
        if key == HINTS_KEY:
            continue
        if key in out:
            if out[key] != value:
                raise RecordError(f"not_representable_as_{fmt}:field_collision:{key}")
            continue
        out[key] = value
    return out


def spread_meta(out: dict, meta: dict, fmt: str) -> dict:
    """Put ``meta`` fields back as top-level fields (see ``spread``)."""
    return spread(out, meta, fmt)


def hints(meta: dict) -> dict:
    """sftdata's format hints stored in a record's meta (empty when there are none)."""
    value = meta.get(HINTS_KEY)
    return value if isinstance(value, dict) else {}


def weight_of(obj: dict) -> tuple[float | None, str | None]:
    """A message's loss weight and the key it came from: ``weight``, else ``loss_weight``
    (LLaMA-Factory's v1 name); ``bad_weight`` unless it is a finite number."""
    key = "weight" if obj.get("weight") is not None else (
        "loss_weight" if obj.get("loss_weight") is not None else None)
    if key is None:
        return None, None
    weight = obj[key]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise RecordError("bad_weight")
    try:
        weight = float(weight)
    except OverflowError:  # an integer too large for a float
        raise RecordError("bad_weight") from None
    if not math.isfinite(weight):
        raise RecordError("bad_weight")
    return weight, key


def default_weight(role: str) -> float:
    """The loss weight every loader assumes when a message has none: 1 for assistant
    turns, 0 for the others (OpenAI fine-tuning, LLaMA-Factory, axolotl, TRL)."""
    return 1.0 if role == "assistant" else 0.0


def informative_weight(role: str, weight: float | None) -> float | None:
    """``weight`` when it says something the role does not (writers omit the rest).

    >>> informative_weight("user", 0.0), informative_weight("assistant", 0.0)
    (None, 0.0)
    """
    return None if weight is None or weight == default_weight(role) else weight


def openai_tool(spec: dict) -> dict:
    """A tool spec in OpenAI's shape, ``{"type": "function", "function": {...}}``; a spec
    already in that shape (or of another type) is kept as it is.

    >>> openai_tool({"name": "f", "parameters": {}})
    {'type': 'function', 'function': {'name': 'f', 'parameters': {}}}
    """
    return spec if "type" in spec and ("function" in spec or spec.get("type") != "function") else \
        {"type": "function", "function": spec}


def bare_tool(spec: dict) -> dict:
    """The function spec inside OpenAI's ``{"type": "function", "function": {...}}``
    (``openai_tool``'s inverse); any other spec as it is."""
    if set(spec) == {"type", "function"} and spec["type"] == "function" and isinstance(spec["function"], dict):
        return spec["function"]
    return spec


def parse_tools(value: Any) -> list | None:
    """A ``tools`` column: a JSON string or a list of specs; ``bad_tools`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise RecordError("bad_tools") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RecordError("bad_tools")
    check_value(value)
    return value


def make_tool_call(name: Any, arguments: Any, call_id: Any = None, extra: dict | None = None) -> dict:
    """A canonical tool call; ``arguments`` objects are JSON-encoded, strings kept as is."""
    if not isinstance(name, str) or not name:
        raise RecordError("bad_tool_call")
    if not isinstance(arguments, str):
        check_value(arguments)
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    if call_id is not None and not isinstance(call_id, str):
        raise RecordError("bad_tool_call")
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if extra:
        check_value(extra)
        call["extra"] = extra
    return call


def decode_arguments(arguments: str) -> Any:
    """Tool-call arguments as JSON when they parse (ShareGPT stores objects), else the text."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments

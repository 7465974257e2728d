"""Checks and tool-call helpers shared by the format converters.

Every converter is a pair of pure functions over dicts:
``to_canonical(row) -> {"messages", "tools", "meta"}`` and ``from_canonical(record) -> row``;
both raise ``RecordError(reason)`` for a record they cannot convert.
"""

from __future__ import annotations

import json
from typing import Any

from sftdata.errors import RecordError
from sftdata.records import HINTS_KEY


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


def extra_fields(row: dict, known: tuple[str, ...]) -> dict:
    """Everything in the row the format does not define: kept in ``meta``."""
    return {k: v for k, v in row.items() if k not in known}


def spread_meta(out: dict, meta: dict) -> dict:
    """Put ``meta`` fields back as top-level fields (not sftdata's own hints)."""
    for key, value in meta.items():
        if key != HINTS_KEY and key not in out:
            out[key] = value
    return out


def hints(meta: dict) -> dict:
    """sftdata's format hints stored in a record's meta (empty when there are none)."""
    value = meta.get(HINTS_KEY)
    return value if isinstance(value, dict) else {}


def parse_tools(value: Any) -> list | None:
    """A ``tools`` column: a JSON string or a list of specs; ``bad_tools`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError("bad_tools") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RecordError("bad_tools")
    return value


def make_tool_call(name: Any, arguments: Any, call_id: Any = None) -> dict:
    """A canonical tool call; ``arguments`` objects are JSON-encoded, strings kept as is."""
    if not isinstance(name, str) or not name:
        raise RecordError("bad_tool_call")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    if call_id is not None and not isinstance(call_id, str):
        raise RecordError("bad_tool_call")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def decode_arguments(arguments: str) -> Any:
    """Tool-call arguments as JSON when they parse (ShareGPT stores objects), else the text."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments

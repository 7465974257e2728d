"""The formats sftdata reads and writes, and detection of a file's format from its columns.

``FORMATS`` maps a name to its module of two pure functions, ``to_canonical`` and
``from_canonical``. ``canonical`` is sftdata's own record written as is (the output of
``sftdata generate`` and of stages that keep the canonical shape).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterable

from sftdata.errors import RecordError, UserError
from sftdata.formats import alpaca, openai, sharegpt
from sftdata.records import clean_message

CANONICAL_FIELDS = ("id", "messages", "tools", "source", "meta")


def _canonical_to(row: dict) -> dict:
    """Validate a canonical record with the OpenAI rules; keep its id, source and meta."""
    converted = openai.to_canonical({"messages": row.get("messages"), "tools": row.get("tools")})
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("not_an_object:meta")
    return {**converted, "meta": meta, "id": row.get("id"), "source": row.get("source")}


def _canonical_from(record: dict) -> dict:
    return {
        "id": record["id"],
        "messages": [clean_message(m) for m in record["messages"]],
        "tools": record.get("tools"),
        "source": record.get("source") or "",
        "meta": record.get("meta") or {},
    }


FORMATS = {
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "openai": openai,
    "canonical": SimpleNamespace(to_canonical=_canonical_to, from_canonical=_canonical_from),
}
FORMAT_NAMES = tuple(FORMATS)


def check_format(name: str) -> str:
    """``name`` if it is a known format; a one-line error listing them otherwise."""
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; use one of {', '.join(FORMAT_NAMES)}")
    return name


def detect_format(rows: Iterable[dict]) -> str:
    """The format named by the columns of the first rows (``--from`` overrides it).

    >>> detect_format([{"instruction": "x", "output": "y"}])
    'alpaca'
    >>> detect_format([{"conversations": []}])
    'sharegpt'
    """
    columns: set[str] = set()
    for i, row in enumerate(rows):
        columns |= set(row)
        if i >= 100:
            break
    if {"id", "messages", "source", "meta"} <= columns:
        return "canonical"
    if "conversations" in columns:
        return "sharegpt"
    if "messages" in columns:
        return "openai"
    if "instruction" in columns or "output" in columns:
        return "alpaca"
    shown = ", ".join(sorted(columns)[:8]) or "none"
    raise UserError(
        f"cannot tell the format from the columns ({shown}); pass --from alpaca|sharegpt|openai"
    )

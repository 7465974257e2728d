"""The formats sftdata reads and writes, and detection of a file's format from its columns.

``FORMATS`` maps a name to its module of two pure functions, ``to_canonical`` and
``from_canonical``. ``canonical`` is sftdata's own record written as is (the output of
``sftdata generate`` and of stages that keep the canonical shape).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterable

from sftdata.errors import RecordError, UserError
from sftdata.formats import alpaca, llamafactory_v1, openai, prompt_completion, sharegpt
from sftdata.formats.common import check_value
from sftdata.records import clean_message

CANONICAL_FIELDS = ("id", "messages", "tools", "source", "meta")


def _flat(obj, known: tuple[str, ...]) -> dict:
    """A canonical message or tool call with the keys of its ``extra`` put back beside
    the modelled ones (how the OpenAI rules read them)."""
    if not isinstance(obj, dict) or obj.get("extra") is None:
        return obj
    extra = obj["extra"]
    if not isinstance(extra, dict) or any(k in known for k in extra):
        raise RecordError("bad_extra")
    return {**{k: v for k, v in obj.items() if k != "extra"}, **extra}


def _canonical_to(row: dict) -> dict:
    """Validate a canonical record with the OpenAI rules; keep its id, source and meta."""
    messages = row.get("messages")
    if isinstance(messages, list):
        messages = [_flat(m, (*openai.MESSAGE_KEYS, "weight", "extra")) for m in messages]
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("tool_calls"), list):
                m["tool_calls"] = [_flat(c, (*openai.CALL_KEYS, "extra")) for c in m["tool_calls"]]
    converted = openai.to_canonical({"messages": messages, "tools": row.get("tools")})
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("not_an_object:meta")
    check_value(meta)
    for key in ("id", "source"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise RecordError(f"not_a_string:{key}")
    extra = {k: v for k, v in row.items() if k not in CANONICAL_FIELDS}
    if extra:  # a canonical record has no other fields: they would be lost
        raise RecordError(f"unknown_field:{next(iter(extra))}")
    return {**converted, "meta": meta, "id": row.get("id"), "source": row.get("source")}


def _canonical_from(record: dict) -> dict:
    return {
        "id": record["id"],
        "messages": [clean_message(m) for m in record["messages"]],
        "tools": record.get("tools"),
        "source": record.get("source") or "",
        "meta": record.get("meta") or {},
    }


def _no_facts(values: list) -> dict[str, int]:
    return {}


FORMATS = {
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "openai": openai,
    "llamafactory_v1": llamafactory_v1,
    "prompt_completion": prompt_completion,
    "canonical": SimpleNamespace(to_canonical=_canonical_to, from_canonical=_canonical_from),
}
# The raw field a format's ``facts`` hook counts over (the audit shows the facts).
FACT_FIELDS = {"alpaca": "input"}


def facts(fmt: str, values: list) -> dict[str, int]:
    """A format's own facts about the raw ``FACT_FIELDS`` values of its kept records."""
    hook = getattr(FORMATS[fmt], "facts", _no_facts)
    return hook(values) if fmt in FACT_FIELDS else {}
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
        return "openai"  # LLaMA-Factory v1 samples too: the OpenAI rules read them
    if {"prompt", "completion"} <= columns:
        return "prompt_completion"
    if "instruction" in columns or "output" in columns:
        return "alpaca"
    shown = ", ".join(sorted(columns)[:8]) or "none"
    raise UserError(
        f"cannot tell the format from the columns ({shown}); pass --from alpaca|sharegpt|openai, "
        "or map the columns: --columns THEIRS=OURS,... (e.g. question=instruction,response=output; "
        "conversation=messages), --roles bot=assistant,..., or --dataset-info FILE --name N"
    )

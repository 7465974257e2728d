"""Seed tasks: the shipped set or the user's own file, in any supported format.

A seed task is an instruction, an optional input, an output and whether it is a
classification task. Alpaca rows keep their ``instruction`` / ``input`` split; other
formats (ShareGPT, OpenAI messages, canonical) use the last user turn as the
instruction. The classification flag is ``is_classification`` as a top-level field or
in ``meta``. Rows that do not convert are counted as rejects, never fatal.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from sftdata.errors import RecordError, UserError
from sftdata.formats import FORMATS, detect_format
from sftdata.rawrows import read_rows


@dataclass(frozen=True)
class SeedTask:
    instruction: str
    input: str
    output: str
    is_classification: bool


def shipped_seeds_path() -> Path:
    """The seed set shipped with sftdata (112 tasks written for this project)."""
    return Path(str(importlib.resources.files("sftdata.data"))) / "seed_tasks.jsonl"


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _seed_from_row(row: dict, fmt: str) -> SeedTask:
    converted = FORMATS[fmt].to_canonical(row)  # validates; raises RecordError
    meta = converted.get("meta") or {}
    flag = _flag(row.get("is_classification", meta.get("is_classification", False)))
    if fmt == "alpaca":
        return SeedTask(row["instruction"].strip(), (row.get("input") or "").strip(),
                        row["output"].strip(), flag)
    messages = converted["messages"]
    users = [m for m in messages if m["role"] == "user"]
    answers = [m for m in messages if m["role"] == "assistant"]
    if not users or not answers:
        raise RecordError("no_user_assistant_pair")
    return SeedTask(users[-1]["content"].strip(), "", answers[-1]["content"].strip(), flag)


def load_seeds(path: str | Path | None = None) -> tuple[list[SeedTask], dict[str, int]]:
    """Seed tasks from ``path`` (default: the shipped set) and rejects counted by reason."""
    path = Path(path) if path is not None else shipped_seeds_path()
    rows = list(read_rows(path))
    good = [r.data for r in rows if r.data is not None]
    if not good:
        raise UserError(f"{path}: no readable seed tasks")
    fmt = detect_format(good)
    seeds: list[SeedTask] = []
    rejects: dict[str, int] = {}
    seen: set[str] = set()
    for row in rows:
        reason = row.error
        if reason is None:
            try:
                seed = _seed_from_row(row.data, fmt)
                if seed.instruction.lower() in seen:
                    reason = "duplicate_seed"
                else:
                    seen.add(seed.instruction.lower())
                    seeds.append(seed)
            except RecordError as exc:
                reason = exc.reason
        if reason is not None:
            rejects[reason] = rejects.get(reason, 0) + 1
    if not seeds:
        raise UserError(f"{path}: none of the {len(rows)} rows is a usable seed task")
    return seeds, rejects

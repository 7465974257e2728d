"""What every model-based score step shares: scores in ``meta``, the score cache, identities.

A score step (``perplexity``, ``ifd``, ``judge``, ``reward``) writes its score into each
record's ``meta`` under its ``key`` (default: the step's name) and keeps the record;
it drops a record only when the user sets a threshold, or when the record cannot be
scored at all (a reject with the reason, never a silent zero).

Scores are expensive, so each step keeps what it computed in a cache file
(``<sftdata cache>/scores/<step>-<fingerprint>.jsonl``) keyed by the record: its ``id``
plus a digest of its messages and tools (two records that share an input-given id but
differ in content never share a score). The fingerprint covers everything that changes
the score (the model's identity, the chat template or rubric text, the params that
matter), so a killed run resumes where it stopped and an unchanged rerun computes
nothing, while any change starts a new file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata.progress import Bar
from sftdata.io import JsonlAppender, read_complete_lines
from sftdata.steps.base import Step, split_by_reason


def digest(*parts: Any, size: int = 8) -> str:
    """A short stable hash of JSON-able parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=size).hexdigest()


def record_key(record: dict) -> str:
    """The cache key of a record: its id and a digest of what a model sees of it."""
    return f"{record['id']}:{digest(record['messages'], record.get('tools'))}"


def model_identity(path: str | os.PathLike) -> dict:
    """What identifies a local model folder without hashing gigabytes of weights: its
    resolved path, a digest of each small config/tokenizer/template file, and the name,
    size and modification time of each weight file."""
    folder = Path(path).resolve()
    small, weights = {}, []
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        if p.suffix in (".json", ".jinja", ".txt", ".model") and p.stat().st_size < 50_000_000:
            small[str(p.relative_to(folder))] = hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest()
        elif p.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            weights.append((str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime)))
    return {"path": str(folder), "files": small, "weights": weights}


def scores_dir() -> Path:
    """Where score caches live: ``$SFTDATA_SCORES`` or ``<sftdata cache>/scores``."""
    from sftdata.local_model import cache_dir

    return Path(os.environ.get("SFTDATA_SCORES") or cache_dir() / "scores")


class ScoreCache:
    """Scores already computed for one fingerprint, appended as they are made (resumable).

    ``enabled=False`` keeps everything in memory only (nothing read, nothing written).
    """

    def __init__(self, kind: str, fingerprint: dict, enabled: bool = True):
        self.path = scores_dir() / f"{kind}-{digest(fingerprint, size=10)}.jsonl"
        self.enabled = enabled
        self.values: dict[str, Any] = {}
        self._out: JsonlAppender | None = None
        if enabled:
            for row in read_complete_lines(self.path):
                self.values[row["key"]] = row["value"]

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys (in order, without repeats) that have no cached value yet."""
        seen, out = set(), []
        for key in keys:
            if key not in self.values and key not in seen:
                seen.add(key)
                out.append(key)
        return out

    def put(self, items: dict[str, Any]) -> None:
        """Remember values (and append them to the cache file at once)."""
        self.values.update(items)
        if self.enabled and items:
            if self._out is None:
                self._out = JsonlAppender(self.path)
            self._out.append({"key": k, "value": v} for k, v in items.items())

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def set_meta(frame: pl.DataFrame, values: dict[str, list]) -> pl.DataFrame:
    """``frame`` with ``meta[key] = values[key][i]`` set on every row (None: left unset)."""
    metas = []
    for i, raw in enumerate(frame["meta"].to_list()):
        meta = json.loads(raw) if raw else {}
        for key, column in values.items():
            if column[i] is not None:
                meta[key] = column[i]
        metas.append(json.dumps(meta, ensure_ascii=False))
    return frame.with_columns(pl.Series("meta", metas, dtype=pl.String))


def meta_value(meta: dict, key: str) -> Any:
    """``meta[key]``, where ``key`` may be a dotted path into nested dicts (``ifd_parts.loss``)."""
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def meta_numbers(frame: pl.DataFrame, key: str) -> np.ndarray:
    """The numeric ``meta[key]`` of every row as float64 (dotted keys reach into nested
    dicts); NaN where missing or not a finite number. Vectorised: polars reads the JSON."""
    if frame.height == 0:
        return np.zeros(0)
    path = "$" + "".join(f"['{part}']" for part in key.split("."))
    raw = frame["meta"].str.json_path_match(path)
    values = raw.cast(pl.Float64, strict=False).to_numpy().astype(np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def score_keys(frame: pl.DataFrame) -> list[str]:
    """The numeric top-level meta keys present in ``frame`` (for the audit), sorted."""
    keys: set[str] = set()
    for raw in frame["meta"].to_list():
        for key, value in (json.loads(raw) if raw else {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.add(key)
    return sorted(keys)


def progress_bar(total: int, description: str, enabled: bool) -> Bar:
    """The bar a score step shows on stderr while it scores ``total`` records."""
    return Bar(description, total, enabled=enabled and total > 0)


class ScoreParams(BaseModel):
    """Params every score step has: where the score goes, optional thresholds, the cache."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    key: str | None = Field(None, description="meta key the score is written to (default: the step's name).")
    drop_below: float | None = Field(None, description="Drop records scoring below this (reason <step>_too_low); unset = keep all.")
    drop_above: float | None = Field(None, description="Drop records scoring above this (reason <step>_too_high); unset = keep all.")
    cache: bool = Field(True, description="Keep scores in <sftdata cache>/scores so a rerun or a killed run resumes instead of recomputing.")
    progress: bool = Field(True, description="Show a progress bar on stderr.")


class ScoreStep(Step):
    """Base of the score steps: cache lookup, scoring of what is missing, meta, thresholds.

    A subclass gives ``fingerprint()`` (everything its score depends on) and
    ``compute(records, keys, cache)``, which scores the records, ``cache.put``s each
    value that may be reused (as soon as it has it, so a killed run resumes) and returns
    every value it made. A value is ``{"score": float, "meta": {suffix: value}}`` (each
extra entry is written to ``meta[key + suffix]``, e.g. ``ifd_parts``)
    or ``{"error": reason, "detail": {...}}`` for a record that could not be scored.
    """

    row_local = False  # sees the whole file at once (Step.row_local)

    Params = ScoreParams

    @property
    def key(self) -> str:
        return self.params.key or self.name

    def fingerprint(self) -> dict:
        raise NotImplementedError

    def compute(self, records: list[dict], keys: list[str], cache: ScoreCache) -> dict[str, dict]:
        raise NotImplementedError

    def interpret(self, value: dict) -> dict:
        """A stored value as ``{"score"...}`` or ``{"error"...}`` (steps that cache raw
        answers parse them here, so a better parser needs no new answers)."""
        return value

    def run(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        from sftdata.records import records_from_frame

        records = records_from_frame(frame)
        keys = [record_key(r) for r in records]
        cache = ScoreCache(self.name, {"step": self.name, **self.fingerprint()}, self.params.cache)
        try:
            values = dict(cache.values)
            todo = cache.missing(keys)
            if todo:
                by_key = dict(zip(keys, records))
                values.update(self.compute([by_key[k] for k in todo], todo, cache))
        finally:
            cache.close()
        p = self.params
        reasons, details, scores, extras = [], [], [], []
        for key in keys:
            value = self.interpret(values[key])
            score = value.get("score")
            reason, detail = value.get("error"), value.get("detail")
            if reason is None and p.drop_below is not None and score < p.drop_below:
                reason, detail = f"{self.name}_too_low", {self.key: score, "drop_below": p.drop_below}
            if reason is None and p.drop_above is not None and score > p.drop_above:
                reason, detail = f"{self.name}_too_high", {self.key: score, "drop_above": p.drop_above}
            reasons.append(reason)
            details.append(json.dumps(detail, ensure_ascii=False) if detail else None)
            scores.append(score)
            extras.append(value.get("meta"))
        columns = {self.key: scores}
        for suffix in sorted({n for e in extras if e for n in e}):
            columns[self.key + suffix] = [(e or {}).get(suffix) for e in extras]
        scored = set_meta(frame, columns)
        return split_by_reason(scored, pl.Series(reasons, dtype=pl.String),
                               pl.Series(details, dtype=pl.String))

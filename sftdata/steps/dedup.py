"""Exact and near-duplicate (MinHash LSH) dedup steps.

Both steps name, for every record they drop, the record it duplicates (``detail``:
``{"duplicate_of": id, "similarity": s}``), so the audit can show clusters.

Which copy survives is the ``keep`` policy: ``first`` (input order), ``longest`` (most
characters in the deduplicated fields) or ``quality`` (highest numeric
``meta[score_field]``; records without a score rank last). Ties go to the earlier row.

Near-dup selection is greedy in keep order: a record is dropped only when it has a
*verified* edge (estimated Jaccard >= threshold) to a record that is itself kept. So a
dropped record always names a kept record it really resembles, and chains
(A~B, B~C, A!~C) never drop C because of A.

Both are ``GlobalStep``s: they ``observe`` the data batch by batch keeping only what
they must per record (exact: a 128-bit hash of the normalised text; near: a 128-byte
b-bit signature; and the value the keep policy ranks by), ``decide`` once, and
``split`` the batches on a second pass; the ids of the records others duplicate are
fetched at the end (``wants_ids``/``give_ids``), not held for every record. 10 million
records take about 1.5 GB.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sftdata import text as tx
from sftdata.steps import minhash as mh
from sftdata.steps.base import GlobalStep, prompt_text, split_by_reason
from sftdata.steps.registry import register

Fields = Literal["prompt", "response", "both"]
Keep = Literal["first", "longest", "quality"]


def turns_text(roles: list[str]) -> pl.Expr:
    """The turns of ``roles`` joined by newlines, each with its tool calls (name and
    arguments as JSON), so two tool-use records that differ only in the call made are
    not taken for duplicates."""
    m = pl.element().struct
    calls = m.field("tool_calls").list.eval(
        pl.element().struct.field("function").struct.json_encode()).list.join(" ")
    turn = pl.concat_str([m.field("content").fill_null(""), calls.fill_null("")], separator=" ")
    return (pl.col("messages").list.eval(pl.when(m.field("role").is_in(roles)).then(turn))
            .list.drop_nulls().list.join("\n").str.strip_chars().fill_null(""))


def field_text(fields: str) -> pl.Expr:
    """The text a dedup or decontamination step compares: prompt (user turns), response
    (assistant turns with their tool calls) or both (with tool results too)."""
    if fields == "prompt":
        return prompt_text()
    if fields == "response":
        return turns_text(["assistant"])
    return turns_text(["user", "assistant", "tool"])


def field_series(frame: pl.DataFrame, fields: str, chunk: int = 100_000) -> pl.Series:
    """``field_text`` evaluated slice by slice: the list expressions behind it need
    several times the text's size in scratch memory, so slices keep the peak small."""
    parts = [frame.slice(start, chunk).select(field_text(fields)).to_series()
             for start in range(0, frame.height, chunk)]
    return pl.concat(parts) if parts else pl.Series("text", [], dtype=pl.String)


def rank_values(frame: pl.DataFrame, text: pl.Series, keep: str, score_field: str) -> np.ndarray | None:
    """What the keep policy ranks each row by (smaller first); None for ``first``."""
    if keep == "first":
        return None
    if keep == "longest":
        return -text.str.len_chars().to_numpy().astype(np.float64)
    score = frame["meta"].str.json_path_match(f"$.{score_field}")
    values = score.cast(pl.Float64, strict=False).to_numpy()
    return np.where(np.isnan(values), np.inf, -values)


def keep_rank(values: np.ndarray | None, n: int) -> np.ndarray:
    """rank[i] = position of row i in keep order (0 = the first to survive); ties by row."""
    idx = np.arange(n)
    if values is None:
        return idx
    order = np.lexsort((idx, values))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = idx
    return rank


def shared_text(batch: pl.DataFrame, fields: str, shared: dict | None) -> pl.Series:
    """``field_series`` of the batch, computed once for every step given the same
    ``shared`` dict (the dedup steps of one run share it)."""
    if shared is None:
        return field_series(batch, fields)
    if ("text", fields) not in shared:
        shared[("text", fields)] = field_series(batch, fields)
    return shared[("text", fields)]


def shared_tokens(text: pl.Series, fields: str, unit: str, shared: dict | None):
    """(token hashes, offsets) of the text (``minhash.token_hashes``), shared like
    ``shared_text``."""
    if shared is None:
        return mh.token_hashes(text, unit)
    if ("tokens", fields, unit) not in shared:
        shared[("tokens", fields, unit)] = mh.token_hashes(text, unit)
    return shared[("tokens", fields, unit)]


def exact_keys(text: pl.Series, tokens=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 128-bit key per row (two uint64 arrays) and whether it has one: the sequence of
    its normalised words (``sftdata.text`` tokens: NFKC, lower case, no punctuation or
    spacing), so two texts that differ only in those are equal.

    Text without a single word (emoji, symbols) keys on its whitespace-folded form
    instead, so distinct emoji-only answers are not all "equal to the empty string";
    empty text has no key.
    """
    hashes, offsets = tokens if tokens is not None else mh.token_hashes(text)
    k1, k2 = mh.sequence_keys(hashes, offsets)
    has = np.diff(offsets) > 0
    if not has.all():
        rows = np.flatnonzero(~has)
        raw = tx.normalise(text.gather(rows)).str.replace_all(r"\s+", " ").str.strip_chars()
        k1[rows], k2[rows] = raw.hash(seed=11).to_numpy(), raw.hash(seed=29).to_numpy()
        has[rows] = (raw != "").to_numpy()
    return k1, k2, has


class _DedupStep(GlobalStep):
    """What both dedup steps share: the observed rows' rank values, and decisions
    ``dup_of`` / ``similarity`` over all observed rows."""

    reason_code = ""

    def reset(self) -> None:
        self._parts: list[tuple] = []
        self._dup_of = self._sims = None
        self._target_ids: dict[int, str] = {}

    def observe(self, batch: pl.DataFrame, shared: dict | None = None) -> None:
        if not hasattr(self, "_parts"):
            self.reset()
        text = shared_text(batch, self.params.fields, shared)
        ranks = rank_values(batch, text, self.params.keep, self.params.score_field)
        self._parts.append((self._observe(text, shared), ranks))

    def _observe(self, text: pl.Series, shared: dict | None):
        raise NotImplementedError

    def decide(self, alive: np.ndarray | None = None) -> None:
        parts, self._parts = self._parts, []  # handed over: _decide frees them as it goes
        states = [state for state, _ in parts]
        ranks = [r for _, r in parts]
        del parts
        values = None if any(r is None for r in ranks) else (np.concatenate(ranks) if ranks else None)
        n = sum(self._count(s) for s in states)
        rank = keep_rank(values, n)
        alive = np.ones(n, dtype=bool) if alive is None else alive
        self._dup_of, self._sims = self._decide(states, rank, alive)

    def _count(self, state) -> int:
        raise NotImplementedError

    def adopt(self, dup_of: np.ndarray, sims: np.ndarray) -> None:
        """Take decisions made elsewhere (the Ray engine's shuffles) instead of ``decide``:
        ``dup_of[i]`` the row that row i duplicates (-1: kept), ``sims[i]`` how alike."""
        self._dup_of, self._sims = dup_of, sims

    def wants_ids(self) -> np.ndarray:
        """The observed rows whose ids the rejects will name (sorted)."""
        return np.unique(self._dup_of[self._dup_of >= 0])

    def give_ids(self, ids: list[str]) -> None:
        self._target_ids = dict(zip(self.wants_ids().tolist(), ids))

    def dropped(self) -> np.ndarray:
        """True for each observed row this step drops."""
        return self._dup_of >= 0

    def split(self, batch: pl.DataFrame, offset: int):
        dup_of = self._dup_of[offset:offset + batch.height]
        sims = self._sims[offset:offset + batch.height]
        dropped = np.flatnonzero(dup_of >= 0)
        reasons = pl.Series([None] * batch.height, dtype=pl.String)
        details = pl.Series([None] * batch.height, dtype=pl.String)
        if len(dropped):  # only the dropped rows get a detail (a Python loop over them alone)
            reasons = reasons.scatter(dropped, self.reason_code)
            details = details.scatter(dropped, [
                json.dumps({"duplicate_of": self._target_ids[d], "similarity": round(float(s), 4)})
                for d, s in zip(dup_of[dropped].tolist(), sims[dropped].tolist())])
        kept, rejected = split_by_reason(batch, reasons, details)
        return kept, rejected, reasons.is_null()


class DedupParams(BaseModel):
    """What to compare and which copy to keep (shared by both dedup steps)."""

    model_config = ConfigDict(extra="forbid")
    fields: Fields = Field("both", description="Compare the prompt (user turns), the response (assistant turns) or both.")
    keep: Keep = Field("first", description="Which copy survives: first seen, longest, or highest meta[score_field].")
    score_field: str = Field("quality_score", description="meta key holding a numeric quality score (keep=quality).")


@register
class ExactDedup(_DedupStep):
    """Drop records whose normalised text equals an earlier-kept record's (reason ``exact_duplicate``)."""

    name = "exact_dedup"
    reason_code = "exact_duplicate"
    reason_codes = ("exact_duplicate",)
    Params = DedupParams

    def _observe(self, text: pl.Series, shared: dict | None):
        """A 128-bit hash of each row's key, and whether it has one (10M rows: 170 MB)."""
        return exact_keys(text, shared_tokens(text, self.params.fields, "word", shared))

    def _count(self, state) -> int:
        return len(state[0])

    def _decide(self, states, rank: np.ndarray, alive: np.ndarray):
        n = len(rank)
        dup_of = np.full(n, -1, dtype=np.int64)
        if not n:
            return dup_of, np.ones(0)
        h1 = np.concatenate([s[0] for s in states])
        h2 = np.concatenate([s[1] for s in states])
        rows = np.flatnonzero(np.concatenate([s[2] for s in states]) & alive)
        order = rows[np.lexsort((rank[rows], h2[rows], h1[rows]))]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (h1[order][1:] != h1[order][:-1]) | (h2[order][1:] != h2[order][:-1])
        first = order[new][np.cumsum(new) - 1]
        dup_of[order[~new]] = first[~new]
        return dup_of, np.ones(n)


class NearDedupParams(DedupParams):
    """MinHash LSH near-duplicate detection (see sftdata.steps.minhash)."""

    threshold: float = Field(0.7, gt=0, le=1, description="Estimated Jaccard at or above which two records are duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (signature length).")
    bands: int | None = Field(None, ge=1, description="LSH bands; with rows, bands*rows <= num_perm. Default: datasketch's optimum for threshold, weighted towards recall (candidates are verified).")
    rows: int | None = Field(None, ge=1, description="Signature rows per LSH band (see bands).")
    unit: Literal["word", "char"] = Field("word", description="Shingle unit: words (CJK/Thai characters count as words) or characters.")
    ngram: int = Field(3, ge=1, le=32, description="Shingle size in units; texts shorter than this get one whole-text shingle.")
    seed: int = Field(1, description="Seed of the hash permutations.")
    bucket_window: int = Field(32, ge=1, description="In a large LSH bucket each record is compared with this many neighbours.")

    @model_validator(mode="after")
    def _bands_rows(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def band_layout(self) -> tuple[int, int]:
        """(bands, rows): given, or datasketch's optimum weighted 0.3 FP / 0.7 FN."""
        if self.bands:
            return self.bands, self.rows
        from datasketch.lsh import _optimal_param

        return _optimal_param(self.threshold, self.num_perm, 0.3, 0.7)


def compute_signatures(hashes: np.ndarray, offsets: np.ndarray, p: NearDedupParams, chunk: int = 20_000):
    """(signatures (num_perm, n) uint32, bool mask of rows that had any shingle) of each
    row's tokens (their hashes and offsets, ``minhash.token_hashes``).

    Record chunks run on a thread pool (numpy releases the GIL).
    """
    n = len(offsets) - 1

    def one(start: int):
        stop = min(start + chunk, n)
        lo, hi = offsets[start], offsets[stop]
        shingles, soff = mh.ngram_hashes(hashes[lo:hi], offsets[start:stop + 1] - lo, p.ngram)
        return mh.signatures(shingles, soff, p.num_perm, p.seed, workers=1), np.diff(soff) > 0

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        parts = list(pool.map(one, range(0, max(n, 1), chunk)))
    return np.concatenate([s for s, _ in parts], axis=1), np.concatenate([h for _, h in parts])


def greedy_select(n: int, pairs: np.ndarray, sims: np.ndarray, rank: np.ndarray):
    """dup_of[i] (-1 = kept) and its similarity, processing records in keep order."""
    dup_of = np.full(n, -1, dtype=np.int64)
    dup_sim = np.zeros(n, dtype=np.float32)
    if not len(pairs):
        return dup_of, dup_sim
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    both = np.concatenate([sims, sims])
    order = np.lexsort((rank[dst], src))
    src, dst, both = src[order], dst[order], both[order]
    nodes, starts = np.unique(src, return_index=True)
    ends = np.append(starts[1:], len(src))
    dst_l, sim_l, rank_l = dst.tolist(), both.tolist(), rank.tolist()
    span = dict(zip(nodes.tolist(), zip(starts.tolist(), ends.tolist())))
    kept = np.zeros(n, dtype=bool)
    for v in sorted(span, key=rank_l.__getitem__):
        lo, hi = span[v]
        best, best_sim = -1, -1.0
        for k in range(lo, hi):
            u = dst_l[k]
            if rank_l[u] > rank_l[v]:
                break  # neighbours are sorted by rank: the rest come later
            if kept[u] and sim_l[k] > best_sim:
                best, best_sim = u, sim_l[k]
        if best < 0:
            kept[v] = True
        else:
            dup_of[v], dup_sim[v] = best, best_sim
    return dup_of, dup_sim


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The parts stacked into one array, each part dropped once copied, so the peak is
    the whole plus one part rather than twice the whole (10M signatures: 1.3 GB)."""
    if len(parts) == 1:
        return parts.pop()
    out = np.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    start = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        out[start:start + len(part)] = part
        start += len(part)
        del part
    return out


def near_duplicates(sig8: np.ndarray, has: np.ndarray, rank: np.ndarray, p: NearDedupParams):
    """dup_of / similarity for every row from its b-bit signature."""
    n = sig8.shape[0]
    dup_of = np.full(n, -1, dtype=np.int64)
    dup_sim = np.zeros(n, dtype=np.float32)
    rows = np.flatnonzero(has)
    if not len(rows):
        return dup_of, dup_sim
    # Identical signatures (exact copies, mostly) collapse onto their best-ranked
    # member first, so huge copy clusters never flood the LSH buckets.
    full = mh.row_keys(sig8)[rows]
    order = np.lexsort((rank[rows], full))
    sorted_rows, sorted_keys = rows[order], full[order]
    new_group = np.ones(len(rows), dtype=bool)
    new_group[1:] = sorted_keys[1:] != sorted_keys[:-1]
    rep_of = sorted_rows[np.flatnonzero(new_group)][np.cumsum(new_group) - 1]
    reps = np.sort(sorted_rows[new_group])
    bands, band_rows = p.band_layout()
    pairs = mh.lsh_pairs(sig8, reps, bands, band_rows, p.bucket_window)
    sims = mh.similarity(sig8, pairs[:, 0], pairs[:, 1]) if len(pairs) else np.zeros(0)
    ok = sims >= p.threshold
    return resolve_near(n, reps, sorted_rows[~new_group], rep_of[~new_group], pairs[ok], sims[ok], rank)


def resolve_near(n: int, reps: np.ndarray, members: np.ndarray, member_rep: np.ndarray,
                 pairs: np.ndarray, sims: np.ndarray, rank: np.ndarray):
    """dup_of / similarity of every row, from the verified edges between representatives
    (rows with a distinct signature) and the members that share a representative's
    signature: the one decision rule of both engines."""
    dup_of = np.full(n, -1, dtype=np.int64)
    dup_sim = np.zeros(n, dtype=np.float32)
    rep_dup, rep_sim = greedy_select(n, pairs, sims, rank)
    dup_of[reps], dup_sim[reps] = rep_dup[reps], rep_sim[reps]
    rep_kept = rep_dup[member_rep] < 0
    dup_of[members] = np.where(rep_kept, member_rep, rep_dup[member_rep])
    dup_sim[members] = np.where(rep_kept, 1.0, rep_sim[member_rep])
    return dup_of, dup_sim


@register
class NearDedup(_DedupStep):
    """Drop near-duplicates found by MinHash LSH and verified by estimated Jaccard
    (reason ``near_duplicate``)."""

    name = "near_dedup"
    reason_code = "near_duplicate"
    reason_codes = ("near_duplicate",)
    Params = NearDedupParams

    def _observe(self, text: pl.Series, shared: dict | None):
        """Each row's b-bit signature (128 bytes) and whether it had any shingle."""
        hashes, offsets = shared_tokens(text, self.params.fields, self.params.unit, shared)
        sig, has = compute_signatures(hashes, offsets, self.params)
        return mh.quantise(sig), has

    def _count(self, state) -> int:
        return len(state[1])

    def _decide(self, states, rank: np.ndarray, alive: np.ndarray):
        if not states:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        has = np.concatenate([s[1] for s in states]) & alive
        sig8 = _joined([s[0] for s in states])
        states.clear()
        return near_duplicates(sig8, has, rank, self.params)

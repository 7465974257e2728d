"""Decontamination: drop training records that share an n-gram with evaluation data.

Eval files are read in any supported format (``sftdata.convert.read_canonical``). Text
is tokenised like the dedup step (NFKC, lower case, punctuation dropped, CJK characters
as single tokens), so spacing, case and punctuation changes do not hide an overlap.

An eval text with at least ``n`` tokens contributes its ``n``-grams (default 13, as in
the GPT-3 and Tulu decontamination). A shorter one (a terse benchmark question) would
have no ``n``-gram at all, so it contributes itself whole: a training text containing
the same ``len``-token sequence matches. Eval texts under ``min_tokens`` are ignored
(too short to mean anything: "yes", "42").

Each reject's detail says which eval set matched, which eval record, and the n-gram:
``{"eval_set": "gsm8k_test", "eval_id": "...", "ngram": "natalia sold clips to ...", "n": 13}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata.errors import UserError
from sftdata import text as tx
from sftdata.steps import minhash as mh
from sftdata.steps.base import Step, split_by_reason
from sftdata.steps.dedup import Fields, field_series, field_text
from sftdata.steps.registry import register


class DecontamParams(BaseModel):
    """Which eval files to check against and how."""

    model_config = ConfigDict(extra="forbid")
    against: list[str] = Field(min_length=1, description="Eval files (any supported format).")
    n: int = Field(13, ge=2, le=64, description="n-gram size in tokens (words; CJK characters count as tokens).")
    min_tokens: int = Field(5, ge=1, description="Eval texts shorter than n but at least this long are matched whole; shorter ones are ignored.")
    fields: Fields = Field("both", description="Training text to check: prompt, response or both.")
    eval_fields: Fields = Field("prompt", description="Eval text to take n-grams from (prompt = the questions).")


class EvalIndex:
    """Sorted n-gram hashes of the eval sets, with where each came from."""

    def __init__(self, p: DecontamParams):
        self.n = p.n
        names, ids, token_lists = [], [], []
        from sftdata.convert import read_canonical

        for path in p.against:
            result = read_canonical(path)
            if result.frame.height == 0:
                raise UserError(f"{path}: no readable eval records")
            texts = result.frame.select(field_text(p.eval_fields)).to_series()
            names += [Path(path).stem] * len(texts)
            ids += result.frame["id"].to_list()
            token_lists.append(tx.tokens(texts))
        self.names, self.ids = names, ids
        self.tokens = pl.concat(token_lists)
        hashes, offsets = mh.token_hashes_from_lists(self.tokens)
        lengths = np.diff(offsets)
        self.tables: dict[int, tuple] = {}  # length -> (sorted hashes, record, start)
        self._add(p.n, *self._windows(hashes, offsets, p.n, lengths >= p.n))
        short = (lengths < p.n) & (lengths >= p.min_tokens)
        for length in np.unique(lengths[short]).tolist():
            self._add(length, *self._windows(hashes, offsets, length, lengths == length))

    @staticmethod
    def _windows(hashes, offsets, n, mask):
        """n-gram hashes of the rows in ``mask`` with their record and start position."""
        h, off = mh.ngram_hashes(hashes, offsets, n, short="skip", mix=False)
        per = np.diff(off)
        rec = np.repeat(np.arange(len(per)), per)
        start = np.arange(len(h)) - off[:-1][rec]
        keep = mask[rec]
        return h[keep], rec[keep], start[keep]

    def _add(self, n, h, rec, start):
        if not len(h):
            return
        uniq, first = np.unique(h, return_index=True)
        # A bitmap on the low hash bits answers "surely absent" for almost every
        # training n-gram, so the binary search runs only on the few that may match.
        bits = int(min(max(len(uniq) * 16, 1 << 20), 1 << 27) - 1).bit_length()
        bitmap = np.zeros(1 << bits, dtype=bool)
        bitmap[(uniq & np.uint64((1 << bits) - 1)).astype(np.int64)] = True
        self.tables[n] = (uniq, rec[first], start[first], bitmap, np.uint64((1 << bits) - 1))

    def lookup(self, n: int, h: np.ndarray) -> np.ndarray:
        """Index into table ``n`` for each hash, or -1."""
        table, _, _, bitmap, low = self.tables[n]
        out = np.full(len(h), -1, dtype=np.int64)
        maybe = np.flatnonzero(bitmap[(h & low).astype(np.int64)])
        pos = np.minimum(np.searchsorted(table, h[maybe]), len(table) - 1)
        found = table[pos] == h[maybe]
        out[maybe[found]] = pos[found]
        return out

    def describe(self, n: int, index: int) -> dict:
        _, rec, start, _, _ = self.tables[n]
        words = self.tokens[int(rec[index])].to_list()[int(start[index]) : int(start[index]) + n]
        return {"eval_set": self.names[rec[index]], "eval_id": self.ids[rec[index]],
                "ngram": " ".join(words), "n": n}


@register
class Decontaminate(Step):
    """Drop records sharing an n-gram with any eval set (reason ``contaminated``)."""

    name = "decontaminate"
    reason_codes = ("contaminated",)
    Params = DecontamParams
    path_params = ("against",)

    def prepare(self) -> None:
        if getattr(self, "_index", None) is None:  # built once, for every batch
            self._index = EvalIndex(self.params)

    def run(self, frame: pl.DataFrame):
        p = self.params
        self.prepare()
        index = self._index
        details: list[str | None] = [None] * frame.height
        texts = field_series(frame, p.fields)
        chunk = 50_000
        for begin in range(0, frame.height, chunk):
            hashes, offsets = mh.token_hashes(texts.slice(begin, chunk))
            # Longest first: a full n-gram match is the one worth reporting.
            for n in sorted(index.tables, reverse=True):
                h, off = mh.ngram_hashes(hashes, offsets, n, short="skip", mix=False)
                hit = index.lookup(n, h)
                rec = np.repeat(np.arange(len(off) - 1), np.diff(off))
                where = np.flatnonzero(hit >= 0)
                rows, first = np.unique(rec[where], return_index=True)
                for row, k in zip(rows.tolist(), where[first].tolist()):
                    if details[begin + row] is None:
                        details[begin + row] = json.dumps(index.describe(n, hit[k]), ensure_ascii=False)
        reasons = pl.Series([None if d is None else "contaminated" for d in details], dtype=pl.String)
        return split_by_reason(frame, reasons, pl.Series(details, dtype=pl.String))


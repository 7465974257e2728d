"""Gopher-style repetition filter: duplicate lines, top n-gram and duplicate n-gram ratios.

The thresholds are the Gopher paper's (Rae et al. 2021, table A1), as in datatrove's
``GopherRepetitionFilter``. Line statistics are polars list expressions; the n-gram
statistics are computed for all records at once with numpy: each n-gram of a record
becomes one packed uint64 key ``record | n-gram hash | length-or-position``, a single
sort per n brings equal n-grams of a record together, and run lengths give the counts.
Tokens are words, with CJK/Thai characters as single tokens (``sftdata.text.tokens``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from sftdata import text as tx
from sftdata.steps import minhash as mh
from sftdata.steps.base import Texts
from sftdata.steps.filters_text import ExprFilter, Strict, first_reason, on_rows, text
from sftdata.steps.registry import register

_CHUNK = 1 << 15  # records per chunk: the record number takes the top 16 bits of a key
_LOW = np.uint64(0xFFF)  # 12 low bits: an n-gram's character length, or its position
_SENTINEL = np.uint64(0xFFFF << 48)  # above every record number a chunk can hold


class RepetitionParams(Strict):
    side: Literal["prompt", "response"] = Field("response", description="Which text to check.")
    max_dup_line_frac: float | None = Field(0.3, ge=0, le=1, description="Most share of non-empty lines that repeat an earlier line.")
    max_dup_line_char_frac: float | None = Field(0.2, ge=0, le=1, description="Most share of characters in lines that repeat an earlier line.")
    top_ngram: dict[int, float] = Field({2: 0.20, 3: 0.18, 4: 0.16}, description="n -> most share of characters in the most frequent repeated n-gram.")
    dup_ngram: dict[int, float] = Field({5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}, description="n -> most share of characters inside repeated occurrences of n-grams.")
    min_words: int = Field(50, ge=1, description="Texts with fewer tokens are not checked for n-gram repetition (Gopher's document minimum).")
    cjk_scale: int = Field(2, ge=1, description="For text mostly in CJK characters (one token each), n-gram sizes and min_words are multiplied by this.")


def _runs(sorted_keys: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(start index, length) of each run of equal ``key >> shift``."""
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    groups = sorted_keys >> np.uint64(shift)
    starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
    return starts, np.diff(np.append(starts, len(groups)))


def _invalid_windows(offsets: np.ndarray, count: np.ndarray, n: int, width: int) -> np.ndarray:
    """Windows that start in the last n-1 tokens of their record (they cross into the next)."""
    invalid = np.zeros(width, dtype=bool)
    for k in range(1, n):
        ends = offsets[1:][count >= k] - k
        invalid[ends[ends < width]] = True
    return invalid


def _unique_sentinels(keys: np.ndarray, mask: np.ndarray) -> None:
    """Give masked keys distinct values (also after dropping the 12 low bits) above every
    real key, so they never form runs."""
    keys[mask] = _SENTINEL + (np.arange(int(mask.sum()), dtype=np.uint64) << np.uint64(12))


def ngram_fracs(tokens, lengths_chars, offsets, top: list[int], dup: list[int]) -> dict:
    """{("top"|"dup", n): per-record character fraction} for one chunk of records."""
    nrec = len(offsets) - 1
    count = np.diff(offsets)
    total_tokens = len(tokens)
    cs = np.zeros(total_tokens + 1, dtype=np.int64)
    np.cumsum(lengths_chars, out=cs[1:])
    total_chars = np.maximum(cs[offsets[1:]] - cs[offsets[:-1]], 1)
    rec = np.repeat(np.arange(nrec, dtype=np.uint64), count)
    pos = np.arange(total_tokens, dtype=np.int64) - np.repeat(offsets[:-1], count)
    rec_high = rec << np.uint64(48)
    out = {}
    for kind, n in [("top", n) for n in top] + [("dup", n) for n in dup]:
        width = total_tokens - n + 1
        if width <= 0:
            out[(kind, n)] = np.zeros(nrec)
            continue
        keys = mh.window_hashes(tokens, n, mix=False)
        keys >>= np.uint64(28)
        keys <<= np.uint64(12)
        keys |= rec_high[:width]
        invalid = _invalid_windows(offsets, count, n, width)
        if kind == "top":
            keys |= np.minimum(cs[n : n + width] - cs[:width], 4095).astype(np.uint64)
            _unique_sentinels(keys, invalid)
            keys.sort()
            run_start, run_len = _runs(keys, 0)
            hit = run_len > 1
            first = keys[run_start[hit]]
            best = np.zeros(nrec, dtype=np.int64)
            np.maximum.at(best, (first >> np.uint64(48)).astype(np.int64),
                          run_len[hit] * (first & _LOW).astype(np.int64))
            out[(kind, n)] = best / total_chars
        else:
            keys |= np.minimum(pos[:width], 4095).astype(np.uint64)
            _unique_sentinels(keys, invalid | (pos[:width] >= 4096))
            keys.sort()
            run_start, _ = _runs(keys, 12)
            repeat = np.ones(len(keys), dtype=bool)
            repeat[run_start] = False  # the first occurrence of each n-gram is not a repeat
            k = keys[repeat]
            first = offsets[:-1][(k >> np.uint64(48)).astype(np.int64)] + (k & _LOW).astype(np.int64)
            cover = np.cumsum(np.bincount(first, minlength=total_tokens + n)
                              - np.bincount(first + n, minlength=total_tokens + n))[:total_tokens]
            dup_chars = np.bincount(rec.astype(np.int64), weights=lengths_chars * (cover > 0),
                                    minlength=nrec)
            out[(kind, n)] = dup_chars / total_chars
    return out


def _whitespace_tokens(texts: pl.Series):
    """(token hashes, token character lengths, offsets): whitespace-separated words as
    Gopher counts them (punctuation attached, case kept). A literal split is several
    times faster than any regex tokeniser."""
    lists = texts.str.replace_all("\n", " ", literal=True).str.replace_all(
        "\t", " ", literal=True).str.split(" ")
    lens = lists.list.len().to_numpy().astype(np.int64)
    flat = lists.explode()
    keep = (flat.str.len_bytes() > 0).to_numpy()
    rec = np.repeat(np.arange(len(lens)), lens)[keep]
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rec, minlength=len(lens)), out=offsets[1:])
    hashes = flat.hash(seed=7).to_numpy()[keep]
    chars = flat.str.len_chars().to_numpy()[keep].astype(np.float64)
    return hashes, chars, offsets


def _script_tokens(texts: pl.Series):
    """The same for text written without spaces: one token per CJK/Thai character."""
    lists = tx.tokens(texts)
    lens = lists.list.len().to_numpy().astype(np.int64)
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = lists.explode().drop_nulls()
    return (flat.hash(seed=7).to_numpy(), flat.str.len_chars().to_numpy().astype(np.float64),
            offsets)


@register
class RepetitionFilter(ExprFilter):
    """Repetitive text (``dup_lines``, ``dup_line_chars``, ``top_ngram:<n>``, ``dup_ngram:<n>``)."""

    name = "repetition"
    Params = RepetitionParams
    reason_codes = ("dup_lines", "dup_line_chars", "top_ngram:<n>", "dup_ngram:<n>")

    def _chunk_reasons(self, texts: pl.Series, cjk: bool) -> list:
        """Reasons for one chunk; for CJK text n-gram sizes are scaled by ``cjk_scale``."""
        p = self.params
        scale = p.cjk_scale if cjk else 1
        tokens, chars, offsets = _script_tokens(texts) if cjk else _whitespace_tokens(texts)
        lens = np.diff(offsets)
        top, dup = sorted(p.top_ngram), sorted(p.dup_ngram)
        fracs = ngram_fracs(tokens, chars, offsets, [n * scale for n in top], [n * scale for n in dup])
        reason = np.full(len(lens), None, dtype=object)
        checked = lens >= p.min_words * scale
        # Assign in reverse so the first failing check (smallest n, top before dup) wins.
        for kind, n in reversed([("top", n) for n in top] + [("dup", n) for n in dup]):
            limit = p.top_ngram[n] if kind == "top" else p.dup_ngram[n]
            reason[checked & (fracs[(kind, n * scale)] > limit)] = f"{kind}_ngram:{n}"
        return reason.tolist()

    def _ngram_reasons(self, texts: pl.Series) -> pl.Series:
        """Per-text n-gram reason. Text written mostly without spaces (CJK) is counted in
        characters, about half a word each, so its n-grams are ``cjk_scale`` times longer."""
        texts = texts.fill_null("")
        cjk = tx.mostly_no_space_script(texts).to_numpy()
        out = np.full(len(texts), None, dtype=object)
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            for mask, is_cjk in ((~cjk, False), (cjk, True)):
                rows = np.flatnonzero(mask)
                subset = texts.gather(rows)
                parts = pool.map(lambda s: self._chunk_reasons(subset.slice(s, _CHUNK), is_cjk),
                                 range(0, len(rows), _CHUNK))
                out[rows] = np.array([r for part in parts for r in part] or [], dtype=object)
        return pl.Series(out.tolist(), dtype=pl.String)

    def expr(self, texts: Texts) -> pl.Expr:
        p = self.params
        frame = texts.frame
        # Code blocks repeat lines and phrases by nature ("}", "end", loop bodies).
        t = text(p.side).str.replace_all(r"(?s)```.*?(?:```|$)", "\n")
        lines = t.str.split("\n").list.eval(
            pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))
        n_lines = lines.list.len()
        dup_chars = lines.list.eval(
            pl.element().filter(~pl.element().is_first_distinct()).str.len_chars()).list.sum()
        pairs = []
        if p.max_dup_line_frac is not None:
            dup = (n_lines - lines.list.n_unique()) / pl.max_horizontal(n_lines, 1)
            pairs.append((dup > p.max_dup_line_frac, "dup_lines"))
        if p.max_dup_line_char_frac is not None:
            frac = dup_chars / pl.max_horizontal(t.str.len_chars(), 1)
            pairs.append((frac > p.max_dup_line_char_frac, "dup_line_chars"))
        # Line checks only matter where there are several lines.
        raw = text(p.side)
        reason = on_rows(frame, raw.str.count_matches("\n") >= 1, first_reason(pairs))
        if p.top_ngram or p.dup_ngram:
            ngram = self._ngram_reasons(frame.select(t).to_series())
            reason = pl.coalesce(reason, pl.lit(ngram))
        return reason

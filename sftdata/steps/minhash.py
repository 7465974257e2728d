"""Vectorised tokens, n-gram hashes and MinHash signatures for many records at once.

Why not one ``datasketch.MinHash`` per record: that loop spends its time in Python
(one object, one ``update_batch`` and one LSH insert per record, ~1,700 records/s
here). Here every stage works on flat numpy arrays over *all* records:

1. ``token_hashes``: polars normalises (NFKC, lower case) and splits text into tokens
   in Rust (``sftdata.text.tokens``: words, with each character of a script written
   without spaces as one token, so Chinese gets character tokens instead of one giant
   "word") and hashes each token to 64 bits.
2. ``ngram_hashes``: a rolling polynomial hash over each record's tokens (``n`` words
   or characters). A record shorter than ``n`` tokens gets *one* shingle made of all its
   tokens (the same hash an ``n = len`` n-gram would have): short texts stay distinct
   instead of all getting an empty shingle set and collapsing into one cluster.
3. ``signatures``: ``num_perm`` universal hashes ``a*x + b mod 2**32`` (odd ``a``,
   random ``b``) of every shingle at once, reduced to a per-record minimum with
   ``np.minimum.reduceat``; chunks run on a thread pool (numpy releases the GIL).
   The family is linear like datasketch's own ``(a*x + b) mod p``; the estimate's
   accuracy is checked against exact Jaccard in the tests. ``quantise`` keeps the low
   byte of each minimum (b-bit MinHash): what the dedup step holds per record.
4. ``lsh_pairs``: banding (``bands`` x ``rows``) with one sort per band; candidates
   are then verified with the estimated Jaccard (``similarity``) by the caller.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from sftdata import text as tx

MAX_HASH32 = np.uint32(0xFFFFFFFF)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_CHUNK_SHINGLES = 1 << 14  # 128 x 16k uint32 = 8 MiB: stays in cache


def splitmix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (vectorised): spreads every input bit over the output."""
    h = h ^ (h >> np.uint64(30))
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    return h ^ (h >> np.uint64(31))


def token_hashes(texts: pl.Series, unit: str = "word") -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hash of every token of every text, int64 offsets of length len(texts)+1),
    tokens as ``sftdata.text.tokens`` makes them. ASCII rows take the literal-split path
    (``ascii_token_lists``: the same tokens, several times faster than the regex)."""
    if unit != "word":
        return token_hashes_from_lists(tx.tokens(texts, unit))
    ascii_rows = tx.is_ascii(texts)
    if ascii_rows.all():
        return token_hashes_from_lists(tx.ascii_token_lists(texts))
    if not ascii_rows.any():
        return token_hashes_from_lists(tx.tokens(texts))
    simple, wide = ascii_rows.arg_true(), (~ascii_rows).arg_true()
    parts = [token_hashes_from_lists(tx.ascii_token_lists(texts.gather(simple))),
             token_hashes_from_lists(tx.tokens(texts.gather(wide)))]
    return _interleave(parts, [simple.to_numpy(), wide.to_numpy()], len(texts))


def _interleave(parts, rows, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (hashes, offsets) of row subsets put back in row order."""
    lengths = np.zeros(n, dtype=np.int64)
    for (_, off), idx in zip(parts, rows):
        lengths[idx] = np.diff(off)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(offsets[-1], dtype=np.uint64)
    for (hashes, off), idx in zip(parts, rows):
        per = np.diff(off)
        target = np.repeat(offsets[idx], per) + (np.arange(len(hashes)) - np.repeat(off[:-1], per))
        out[target] = hashes
    return out, offsets


def token_hashes_from_lists(lists: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """``token_hashes`` for a List[String] Series of tokens (empty strings are not tokens)."""
    flat = (lists.rename("t").to_frame().with_row_index("r").explode("t")
            .filter(pl.col("t").str.len_bytes() > 0))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat["r"].to_numpy(), minlength=len(lists)), out=offsets[1:])
    hashes = flat["t"].hash(seed=7).to_numpy().astype(np.uint64, copy=False)
    return hashes, offsets


def sequence_keys(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit keys per row of its token sequence (order counts): equal
    token sequences give equal keys. Rows without tokens get (0, 0)."""
    lengths = np.diff(offsets)
    n = len(lengths)
    k1, k2 = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    if not len(hashes):
        return k1, k2
    position = (np.arange(len(hashes)) - np.repeat(offsets[:-1], lengths)).astype(np.uint64)
    has = np.flatnonzero(lengths > 0)
    starts = offsets[:-1][has]
    mixed = splitmix(hashes ^ (position * _MIX1 + _M1))  # each token, keyed by its place
    k1[has] = np.add.reduceat(mixed, starts)
    mixed ^= mixed >> np.uint64(29)
    mixed *= _MIX2  # a second, independent combination of the same values
    k2[has] = np.add.reduceat(mixed, starts)
    return splitmix(k1 ^ lengths.astype(np.uint64)), splitmix(k2 + lengths.astype(np.uint64))


def ngram_hashes(
    tokens: np.ndarray, offsets: np.ndarray, n: int, short: str = "whole", mix: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every ``n``-token window inside each record, and their offsets.

    ``short="whole"``: a record with 0 < len < n tokens gets one shingle of all its
    tokens (equal to its ``len``-gram hash); ``short="skip"`` gives it none. Records with
    no tokens get no shingles either way.
    """
    lengths = np.diff(offsets)
    total = len(tokens)
    starts = offsets[:-1]
    if total >= n:
        width = total - n + 1
        h = window_hashes(tokens, n, mix)
        # A window is valid unless it starts in the last n-1 tokens of its record.
        valid = np.ones(total, dtype=bool)
        for k in range(1, n):
            ends = offsets[1:][lengths >= k]
            valid[ends - k] = False
        windows = h[valid[:width]]
        per_record = np.maximum(lengths - n + 1, 0)
    else:
        windows = np.zeros(0, dtype=np.uint64)
        per_record = np.zeros(len(lengths), dtype=np.int64)
    short_rows = np.flatnonzero((lengths > 0) & (lengths < n)) if short == "whole" else []
    if len(short_rows):
        h = tokens[starts[short_rows]].copy()
        for k in range(1, n - 1 + 1):
            more = lengths[short_rows] > k
            idx = starts[short_rows[more]] + k
            h[more] = h[more] * _M1 + tokens[idx]
        whole = splitmix(h) if mix else h
        per_record = per_record.copy()
        per_record[short_rows] = 1
        # Splice each short record's one shingle in at its place (records stay in order).
        out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(per_record, out=out_offsets[1:])
        merged = np.empty(out_offsets[-1], dtype=np.uint64)
        is_short = np.zeros(len(lengths), dtype=bool)
        is_short[short_rows] = True
        long_pos = np.repeat(out_offsets[:-1][~is_short], per_record[~is_short])
        within = np.arange(len(long_pos)) - np.repeat(
            np.cumsum(per_record[~is_short]) - per_record[~is_short], per_record[~is_short]
        )
        merged[long_pos + within] = windows
        merged[out_offsets[:-1][short_rows]] = whole
        return merged, out_offsets
    out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(per_record, out=out_offsets[1:])
    return windows, out_offsets


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``num_perm`` (a, b) pairs of the hash family: ``a`` odd, both uint32."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def _chunks(offsets: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Split the rows with shingles into runs holding about ``_CHUNK_SHINGLES`` each."""
    ends = np.cumsum(np.diff(offsets)[rows])
    cuts = np.searchsorted(ends, np.arange(_CHUNK_SHINGLES, ends[-1], _CHUNK_SHINGLES))
    return [c for c in np.split(rows, np.unique(cuts)) if len(c)]


def signatures(
    shingles: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1,
    workers: int | None = None,
) -> np.ndarray:
    """MinHash signatures, shape (num_perm, records) uint32: one row per permutation, so
    a band's rows are contiguous. Records without shingles are all ``0xFFFFFFFF``
    (callers leave those out of LSH)."""
    n = len(offsets) - 1
    sig = np.full((num_perm, n), MAX_HASH32, dtype=np.uint32)
    rows = np.flatnonzero(np.diff(offsets) > 0)
    if not len(rows):
        return sig
    a, b = permutations(num_perm, seed)
    x32 = (shingles >> np.uint64(32)).astype(np.uint32)

    def work(chunk: np.ndarray) -> None:
        lo, hi = offsets[chunk[0]], offsets[chunk[-1] + 1]
        values = np.multiply.outer(a, x32[lo:hi])
        values += b[:, None]
        # Rows in a chunk are consecutive among the non-empty rows, so their shingles
        # are contiguous from ``lo``.
        sig[:, chunk] = np.minimum.reduceat(values, offsets[chunk] - lo, axis=1)

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, _chunks(offsets, rows)))
    return sig


def quantise(sig: np.ndarray) -> np.ndarray:
    """b-bit MinHash (Li & Konig 2010, b = 8): the low byte of each minimum, one row per
    record (shape (records, num_perm), uint8). A quarter of the memory of 32-bit minima,
    so 10 million signatures fit in 1.3 GB; the estimate corrects for chance matches."""
    return np.ascontiguousarray((sig & np.uint32(0xFF)).astype(np.uint8).T)


def similarity(sig8: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each (left[i], right[i]) pair of b-bit signatures: the share
    of equal bytes, less the 1/256 that match by chance, rescaled (clipped to [0, 1])."""
    out = np.empty(len(left), dtype=np.float32)
    step = 1 << 15
    for s in range(0, len(left), step):
        equal = (sig8[left[s:s + step]] == sig8[right[s:s + step]]).mean(axis=1)
        out[s:s + step] = np.clip((equal - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
    return out


def row_keys(sig8: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """One 64-bit key per record for the signature bytes ``start:stop`` (a band, or the
    whole signature): the bytes read as 64-bit words, mixed in order."""
    block = sig8[:, start:stop]
    width = -(-block.shape[1] // 8) * 8
    if width != block.shape[1]:
        padded = np.zeros((block.shape[0], width), dtype=np.uint8)
        padded[:, :block.shape[1]] = block
        block = padded
    words = np.ascontiguousarray(block).view(np.uint64)
    h = np.zeros(block.shape[0], dtype=np.uint64)
    for k in range(words.shape[1]):
        h ^= words[:, k]
        h *= _M1
    return splitmix(h)


def lsh_pairs(
    sig8: np.ndarray, rows: np.ndarray, bands: int, band_rows: int, window: int = 32
) -> np.ndarray:
    """Candidate pairs (i < j, int64, shape (m, 2)) among ``rows`` (ascending) sharing a
    band bucket.

    Within a bucket each member is paired with the next ``window`` members (all pairs
    in buckets of up to ``window + 1``), which bounds the work on huge buckets. Each
    band is one ``np.sort`` of ``key | position`` packed in a uint64 (a plain sort is
    ~3x faster than argsort); the key keeps its top 64 - log2(len(rows)) bits.
    """
    found = []
    n = sig8.shape[0]
    bits = max(int(len(rows)).bit_length(), 1)
    low = np.uint64((1 << bits) - 1)
    position = np.arange(len(rows), dtype=np.uint64)
    for band in range(bands):
        keys = row_keys(sig8, band * band_rows, (band + 1) * band_rows)[rows]
        packed = np.sort((keys & ~low) | position)
        skeys, srows = packed >> np.uint64(bits), rows[(packed & low).astype(np.int64)]
        for d in range(1, window + 1):
            same = skeys[d:] == skeys[:-d]
            if not same.any():
                break
            found.append(srows[:-d][same] * n + srows[d:][same])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


def window_hashes(tokens: np.ndarray, n: int, mix: bool = True) -> np.ndarray:
    """The rolling hash of every ``n``-token window of the flat token array (windows may
    cross record boundaries: callers mask those out). Same formula as ``ngram_hashes``;
    ``mix=False`` skips the finaliser when only equality matters."""
    width = len(tokens) - n + 1
    h = tokens[:width].copy()
    for k in range(1, n):
        h *= _M1
        h += tokens[k : k + width]
    return splitmix(h) if mix else h

"""Exact and near dedup on Ray: the local decisions, made by shuffles.

Both return ``(dup_of, similarity)`` over the frame's rows, the arrays the local
``_DedupStep.decide`` makes, so ``split`` then names the same duplicates with the same
details. The keep order is the local one: rank by the keep policy's value, ties by row.

Exact (one shuffle): each block's map task computes the 128-bit key of every row's
normalised text (``dedup.exact_keys``) and its keep value, and sends (key, value, row)
to partition ``key % P``; each reduce task sorts its partition by (key, value, row) and
drops every row after the first of its key.

Near (two shuffles, then the driver):

1. map: each block's b-bit signatures (``NearDedup``'s own code), kept in the object
   store, and (full-signature key, value, row) to partition ``key % P``;
2. reduce: identical signatures collapse onto their best-ranked member (the local
   ``near_duplicates`` does the same first), giving the representatives;
3. map: for each representative and band, (band, bucket, row) to partition
   ``hash(band, bucket) % P``; the bucket is the band key's top ``64 - log2(reps)``
   bits, exactly the local ``lsh_pairs`` sort key;
4. reduce: sort by (band, bucket, row); each member pairs with its next
   ``bucket_window`` members (the local window rule): the candidate pairs;
5. driver: the candidates' signatures are fetched from the blocks, pairs verified by
   estimated Jaccard (``minhash.similarity``), and the verified edges resolved in keep
   order (``dedup.resolve_near``: greedy, as locally; the edges of a few million
   records fit in memory, see benchmarks/scale/PLAN.md for beyond).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sftdata.engine.ray_cluster import remote as _remote
from sftdata.steps import minhash as mh
from sftdata.steps.dedup import (compute_signatures, exact_keys, field_series, keep_rank, rank_values,
                                 resolve_near)

_SALT = np.uint64(0xD6E8FEB86659FD93)


def _partition(keys: np.ndarray, parts: int) -> np.ndarray:
    return (mh.splitmix(keys ^ _SALT) % np.uint64(parts)).astype(np.int64)


def _scatter(parts: int, where: np.ndarray, **columns) -> list[dict]:
    """Split equal-length arrays into ``parts`` dicts by partition number ``where``."""
    order = np.argsort(where, kind="stable")
    cuts = np.searchsorted(where[order], np.arange(1, parts))
    return [{k: v[idx] for k, v in columns.items()} for idx in np.split(order, cuts)]


def _joined(parts: tuple[dict, ...]) -> tuple[dict, int]:
    """The parts of one partition as one dict of arrays, and their bytes (what the
    shuffle moved into this reduce task)."""
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}, sum(v.nbytes for p in parts for v in p.values())


def _texts(table, params):
    frame = pl.from_arrow(table)
    text = field_series(frame, params.fields)
    values = rank_values(frame, text, params.keep, params.score_field)
    return frame, text, (np.zeros(frame.height) if values is None else values)


# -- exact ----------------------------------------------------------------------------------
def _exact_map(table, offset: int, params, parts: int):
    _, text, values = _texts(table, params)
    k1, k2, has = exact_keys(text, mh.token_hashes(text, "word"))
    rows = np.flatnonzero(has)
    out = _scatter(parts, _partition(k1[rows], parts), k1=k1[rows], k2=k2[rows], value=values[rows],
                   row=rows + offset)
    return out if parts > 1 else out[0]


def _exact_reduce(*parts):
    p, moved = _joined(parts)
    order = np.lexsort((p["row"], p["value"], p["k2"], p["k1"]))
    k1, k2, rows = p["k1"][order], p["k2"][order], p["row"][order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])
    first = rows[new][np.cumsum(new) - 1]
    return rows[~new], first[~new], moved


def exact(engine, params, frame: pl.DataFrame):
    """``ExactDedup``'s (dup_of, similarity) for ``frame``, by a shuffle on the key."""
    ray = engine.ray
    parts = engine.cpus
    mapper = _remote(ray, _exact_map, num_returns=parts)
    reducer = _remote(ray, _exact_reduce)
    mapped = [mapper.remote(ref, offset, params, parts) for offset, ref in engine.blocks(frame)]
    if parts == 1:
        mapped = [[m] for m in mapped]
    dup_of = np.full(frame.height, -1, dtype=np.int64)
    moved = 0
    for rows, first, nbytes in ray.get([reducer.remote(*[m[p] for m in mapped]) for p in range(parts)]):
        dup_of[rows] = first
        moved += nbytes
    engine.note("exact_dedup", records=frame.height, shuffle_bytes=moved)
    return dup_of, np.ones(frame.height)


# -- near -----------------------------------------------------------------------------------
def _near_map(table, offset: int, params, parts: int):
    """(signatures and has of the block, keep values, then one collapse part per partition)."""
    _, text, values = _texts(table, params)
    hashes, offsets = mh.token_hashes(text, params.unit)
    sig, has = compute_signatures(hashes, offsets, params)
    sig8 = mh.quantise(sig)
    rows = np.flatnonzero(has)
    full = mh.row_keys(sig8)[rows]
    out = _scatter(parts, _partition(full, parts), full=full, value=values[rows], row=rows + offset)
    return [(sig8, has), values, *out]


def _collapse_reduce(*parts):
    """(representatives, members, each member's representative) of one partition."""
    p, moved = _joined(parts)
    order = np.lexsort((p["row"], p["value"], p["full"]))
    rows, keys = p["row"][order], p["full"][order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    rep_of = rows[new][np.cumsum(new) - 1]
    return rows[new], rows[~new], rep_of[~new], moved


def _band_map(state, offset: int, local_reps: np.ndarray, bits: int, bands: int, band_rows: int, parts: int):
    sig8, _ = state
    band, bucket, row = [], [], []
    for b in range(bands):
        keys = mh.row_keys(sig8, b * band_rows, (b + 1) * band_rows)[local_reps]
        band.append(np.full(len(keys), b, dtype=np.uint64))
        bucket.append(keys >> np.uint64(bits))
        row.append(local_reps + offset)
    band, bucket, row = np.concatenate(band), np.concatenate(bucket), np.concatenate(row)
    out = _scatter(parts, _partition(bucket ^ (band * mh._MIX1), parts), band=band, bucket=bucket, row=row)
    return out if parts > 1 else out[0]


def _pairs_reduce(window: int, *parts):
    """Candidate pairs (i < j) of one partition's buckets: each member with its next
    ``window`` members, as ``minhash.lsh_pairs`` does within a band."""
    p, moved = _joined(parts)
    order = np.lexsort((p["row"], p["bucket"], p["band"]))
    band, bucket, rows = p["band"][order], p["bucket"][order], p["row"][order]
    found = []
    for d in range(1, window + 1):
        same = (band[d:] == band[:-d]) & (bucket[d:] == bucket[:-d])
        if not same.any():
            break
        found.append(np.stack([rows[:-d][same], rows[d:][same]], axis=1))
    return (np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)), moved


def _take_signatures(state, local_rows: np.ndarray) -> np.ndarray:
    return state[0][local_rows]


def near(engine, params, frame: pl.DataFrame):
    """``NearDedup``'s (dup_of, similarity) for ``frame`` (module docstring)."""
    ray = engine.ray
    parts, n = engine.cpus, frame.height
    blocks = engine.blocks(frame)
    offsets = np.array([o for o, _ in blocks] + [n])
    mapper = _remote(ray, _near_map, num_returns=2 + parts)
    mapped = [mapper.remote(ref, offset, params, parts) for offset, ref in blocks]
    states = [m[0] for m in mapped]
    values = ray.get([m[1] for m in mapped])
    rank = keep_rank(None if params.keep == "first" else np.concatenate(values), n)
    collapse = _remote(ray, _collapse_reduce)
    collapsed = ray.get([collapse.remote(*[m[2 + p] for m in mapped]) for p in range(parts)])
    reps = np.sort(np.concatenate([c[0] for c in collapsed]))
    members = np.concatenate([c[1] for c in collapsed])
    member_rep = np.concatenate([c[2] for c in collapsed])
    del mapped
    if not len(reps):
        return resolve_near(n, reps, members, member_rep, np.zeros((0, 2), np.int64), np.zeros(0), rank)
    bands, band_rows = params.band_layout()
    bits = max(int(len(reps)).bit_length(), 1)
    bander = _remote(ray, _band_map, num_returns=parts)
    banded = []
    for k, state in enumerate(states):
        lo, hi = np.searchsorted(reps, offsets[k:k + 2])
        banded.append(bander.remote(state, int(offsets[k]), reps[lo:hi] - offsets[k], bits, bands, band_rows, parts))
    if parts == 1:
        banded = [[b] for b in banded]
    pairer = _remote(ray, _pairs_reduce)
    found = ray.get([pairer.remote(params.bucket_window, *[b[p] for b in banded]) for p in range(parts)])
    del banded
    pairs = np.concatenate([f[0] for f in found])
    candidates = len(pairs)
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    pairs = np.stack([codes // n, codes % n], axis=1)
    sims = _verify(engine, states, offsets, pairs)
    ok = sims >= params.threshold
    engine.note("near_dedup", records=n, signature_bytes=n * params.num_perm, representatives=len(reps),
                collapse_shuffle_bytes=sum(c[3] for c in collapsed), band_shuffle_bytes=sum(f[1] for f in found),
                candidate_pairs=candidates, unique_pairs=len(pairs), verified_pairs=int(ok.sum()))
    return resolve_near(n, reps, members, member_rep, pairs[ok], sims[ok], rank)


def _verify(engine, states, offsets, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each candidate pair, from the signatures of the rows in a
    pair only (fetched from the blocks that hold them)."""
    if not len(pairs):
        return np.zeros(0, dtype=np.float32)
    needed = np.unique(pairs)
    take = _remote(engine.ray, _take_signatures)
    jobs = []
    for k, state in enumerate(states):
        lo, hi = np.searchsorted(needed, offsets[k:k + 2])
        if hi > lo:
            jobs.append(take.remote(state, needed[lo:hi] - offsets[k]))
    sig8 = np.concatenate(engine.ray.get(jobs))
    return mh.similarity(sig8, np.searchsorted(needed, pairs[:, 0]), np.searchsorted(needed, pairs[:, 1]))


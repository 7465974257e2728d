"""Vector helpers for semantic dedup and diverse selection: spherical k-means, pairs
above a cosine threshold within clusters, deita's score-first filter and k-center greedy.

All vectors are unit length (``sftdata.steps.embeddings``), so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import numpy as np


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Cluster labels from spherical k-means (cosine), k-means++ seeding, fixed seed."""
    n = len(vectors)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(n))]
    closest = 1 - vectors @ vectors[centres[0]]
    for _ in range(1, k):
        weights = np.clip(closest, 0, None) ** 2
        total = weights.sum()
        pick = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        centres.append(pick)
        closest = np.minimum(closest, 1 - vectors @ vectors[pick])
    c = vectors[centres].copy()
    labels = np.zeros(n, dtype=np.int64)
    for step in range(iterations):
        new = np.argmax(vectors @ c.T, axis=1)
        if step and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = vectors[labels == j]
            if len(members):
                mean = members.sum(0)
                c[j] = mean / max(np.linalg.norm(mean), 1e-12)
    return labels


def close_pairs(vectors: np.ndarray, labels: np.ndarray, threshold: float, block: int = 2048
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs (m, 2), similarities)`` of records in the same cluster with cosine
    similarity >= threshold (each unordered pair once)."""
    pairs, sims = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        for lo in range(0, len(members), block):
            rows = members[lo:lo + block]
            sim = vectors[rows] @ vectors[members].T
            r, c = np.nonzero(sim >= threshold)
            keep = members[c] > rows[r]
            pairs.append(np.stack([rows[r][keep], members[c][keep]], axis=1))
            sims.append(sim[r[keep], c[keep]])
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(pairs).astype(np.int64), np.concatenate(sims).astype(np.float32)


def nearest_similarity(vectors: np.ndarray, labels: np.ndarray, block: int = 2048) -> np.ndarray:
    """For each record, the cosine similarity to its most similar other record in its
    cluster (0 for a record alone in its cluster): a per-record redundancy score."""
    best = np.zeros(len(vectors), dtype=np.float32)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        for lo in range(0, len(members), block):
            rows = members[lo:lo + block]
            sim = vectors[rows] @ vectors[members].T
            sim[np.arange(len(rows)), lo + np.arange(len(rows))] = -np.inf
            best[rows] = sim.max(axis=1)
    return best


def deita_select(vectors: np.ndarray, order: np.ndarray, budget: int, threshold: float):
    """deita's score-first, diversity-aware selection: walk records from best to worst
    score and take one unless it is at least ``threshold`` similar to a record already
    taken. Returns (chosen indices, closest[i] = (taken index, similarity) for each
    skipped record). When the walk ends short of the budget, the best skipped records
    fill it, so the budget is always met."""
    chosen: list[int] = []
    closest: dict[int, tuple[int, float]] = {}
    taken = np.zeros((max(budget, 1), vectors.shape[1]), dtype=vectors.dtype)
    for i in order:
        if len(chosen) >= budget:
            break
        if len(chosen):
            sim = taken[:len(chosen)] @ vectors[i]
            j = int(np.argmax(sim))
            if sim[j] >= threshold:
                closest[int(i)] = (chosen[j], float(sim[j]))
                continue
        taken[len(chosen)] = vectors[i]
        chosen.append(int(i))
    for i in [i for i in order if int(i) in closest][: max(0, budget - len(chosen))]:
        chosen.append(int(i))
        del closest[int(i)]
    return chosen, closest


def kcenter_greedy(vectors: np.ndarray, first: int, budget: int) -> list[int]:
    """k-center greedy (Sener & Savarese 2018): start from ``first`` (the best-scored
    record) and repeatedly take the record farthest from everything taken so far."""
    chosen = [int(first)]
    distance = 1 - vectors @ vectors[first]
    distance[first] = -np.inf
    while len(chosen) < min(budget, len(vectors)):
        pick = int(np.argmax(distance))
        chosen.append(pick)
        distance = np.minimum(distance, 1 - vectors @ vectors[pick])
        distance[chosen] = -np.inf
    return chosen

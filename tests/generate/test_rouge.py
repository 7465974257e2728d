"""The ROUGE-L index makes exactly the decisions of rouge_score, only faster."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftdata.generate.rouge import RougeIndex, lcs_length, rouge_l, rouge_tokens

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
tokenize = pytest.importorskip("rouge_score.tokenize")
SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def dp_lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


@given(st.lists(st.integers(0, 5), max_size=40), st.lists(st.integers(0, 5), max_size=40))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    assert lcs_length(a, b) == dp_lcs(a, b)


@settings(max_examples=200)
@given(st.text(max_size=60), st.text(max_size=60))
def test_tokens_and_score_equal_rouge_score(a, b):
    assert rouge_tokens(a) == tokenize.tokenize(a, None)
    assert rouge_l(a, b) == SCORER.score(a, b)["rougeL"].fmeasure


def _texts(n, seed):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(60)]
    texts = []
    for _ in range(n):
        if texts and rng.random() < 0.3:
            words = rng.choice(texts).split()
            if words:
                words[rng.randrange(len(words))] = rng.choice(vocab)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(vocab[: rng.choice([8, 60])])
                                  for _ in range(rng.randint(0, 12))))
    return texts


@pytest.mark.parametrize("floor", [0.0, 0.5, 0.7, 0.9])
def test_index_finds_exactly_the_best_match_above_the_floor(floor):
    index, pool = RougeIndex(floor=floor), []
    for text in _texts(200, seed=int(floor * 10)):
        scores = [SCORER.score(p, text)["rougeL"].fmeasure for p in pool]
        best = max(scores, default=0.0)
        match = index.best(text)
        if best > floor:
            assert match is not None and match.score == best
            assert SCORER.score(match.text, text)["rougeL"].fmeasure == best
        else:
            assert match is None
        index.add(text)
        pool.append(text)


def test_check_and_add_follows_self_instruct_rule():
    index = RougeIndex(floor=0.5, texts=["Write a short poem about the sea."])
    ok, match = index.check_and_add("Write a short poem about the ocean.", 0.7)
    assert not ok and match.score > 0.7 and match.text.startswith("Write a short poem")
    ok, match = index.check_and_add("Explain how vaccines train the immune system.", 0.7)
    assert ok and len(index) == 2
    with pytest.raises(ValueError):
        index.check_and_add("x", 0.3)

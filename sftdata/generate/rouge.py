"""ROUGE-L diversity filter that stays fast as the instruction pool grows.

Self-Instruct rejects a new instruction when its ROUGE-L F-measure against any seed or
earlier instruction exceeds a threshold (0.7), computed with
``rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``. Scoring every candidate
against the whole pool is quadratic in Python; the original scripts take hours at 50k.
This index makes the same decisions while scoring almost no pairs:

1. Text is tokenised once, with rouge_score's rules (lowercase, runs of ``[a-z0-9]``,
   no stemming; so text with no ASCII letters or digits has no tokens and scores 0, as
   in rouge_score), and tokens become integer ids.
2. ROUGE-L F = 2*LCS/(m+n) <= 2*overlap/(m+n), where ``overlap`` is the size of the
   token-multiset intersection. Each token occurrence is an element ``(token, k)`` (the
   k-th occurrence) with an inverted list of the pool entries holding it, so one
   ``numpy.bincount`` over the candidate's lists gives the exact overlap with every
   pool entry at once. Entries whose bound cannot exceed the floor are skipped.
3. The few survivors get an exact LCS (bit-parallel over Python integers) and the
   F-measure computed with rouge_score's own float operations.

No bound ever skips a pair that could exceed the floor, so the decisions equal those of
exact ROUGE-L (checked against ``rouge_score`` in the tests and the benchmark).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_SLACK = 1e-9  # float guard: bounds are loosened by this much, never tightened


def rouge_tokens(text: str) -> list[str]:
    """Tokens exactly as ``rouge_score``'s default tokenizer without stemming.

    >>> rouge_tokens("Write a haiku -- about AUTUMN, in 3 lines!")
    ['write', 'a', 'haiku', 'about', 'autumn', 'in', '3', 'lines']
    """
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: list[int], b: list[int]) -> int:
    """Length of the longest common subsequence (bit-parallel, O(len(a)) big-int steps).

    >>> lcs_length([1, 2, 3, 4], [2, 4, 3])
    2
    """
    if not a or not b:
        return 0
    masks: dict[int, int] = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def fmeasure(lcs: int, target_len: int, prediction_len: int) -> float:
    """ROUGE-L F-measure from the LCS length, with rouge_score's exact float operations."""
    if not target_len or not prediction_len:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts (symmetric), without any index.

    >>> round(rouge_l("Tell me a joke about cats.", "Tell me a joke about dogs"), 4)
    0.8333
    """
    vocab: dict[str, int] = {}
    ta = [vocab.setdefault(t, len(vocab)) for t in rouge_tokens(a)]
    tb = [vocab.setdefault(t, len(vocab)) for t in rouge_tokens(b)]
    return fmeasure(lcs_length(ta, tb), len(ta), len(tb))


@dataclass
class Match:
    """The most similar pool entry found for a candidate (score above the index floor)."""

    score: float
    index: int  # position in the pool
    text: str


class RougeIndex:
    """A growing pool of texts answering "most similar pool text with ROUGE-L > floor".

    ``floor`` is the lowest score the index must find exactly; a decision threshold at
    or above it (e.g. 0.7) is decided exactly. A lower floor also finds near-misses
    (kept in records' meta) at the cost of scoring more pairs.
    """

    def __init__(self, floor: float = 0.7, texts: list[str] | None = None):
        if not 0.0 <= floor < 1.0:
            raise ValueError("floor must be in [0, 1)")
        self.floor = floor
        self.texts: list[str] = []
        self._vocab: dict[str, int] = {}
        self._elements: dict[tuple[int, int], int] = {}
        self._docs: list[list[int]] = []
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._postings: list[np.ndarray] = []  # element id -> pool positions (buffer)
        self._fill: list[int] = []  # element id -> used length of its buffer
        self.pairs_scored = 0  # exact LCS computations, for the benchmark
        for text in texts or []:
            self.add(text)

    def __len__(self) -> int:
        return len(self.texts)

    def ids(self, text: str) -> list[int]:
        """The text's tokens as integer ids (new tokens get new ids)."""
        vocab = self._vocab
        return [vocab.setdefault(t, len(vocab)) for t in rouge_tokens(text)]

    def _element_ids(self, tokens: list[int], create: bool) -> list[int]:
        """Ids of the elements (token, k-th occurrence); unknown ones dropped unless ``create``."""
        seen: dict[int, int] = {}
        out = []
        for token in tokens:
            k = seen.get(token, 0)
            seen[token] = k + 1
            key = (token, k)
            eid = self._elements.get(key)
            if eid is None and create:
                eid = self._elements[key] = len(self._elements)
                self._postings.append(np.empty(4, dtype=np.int64))
                self._fill.append(0)
            if eid is not None:
                out.append(eid)
        return out

    def best(self, text: str, tokens: list[int] | None = None) -> Match | None:
        """The pool text with the highest ROUGE-L F above ``floor``, or None."""
        cand = self.ids(text) if tokens is None else tokens
        m, size = len(cand), len(self._docs)
        if m == 0 or size == 0:
            return None
        lists = [self._postings[e][: self._fill[e]] for e in self._element_ids(cand, False)]
        if not lists:
            return None
        overlap = np.bincount(np.concatenate(lists), minlength=size)
        lengths = self._lengths[:size]
        # 2*overlap/(m+n) > floor, loosened by _SLACK so float rounding never skips a pair.
        survivors = np.flatnonzero(2 * overlap > (self.floor - _SLACK) * (m + lengths))
        if survivors.size == 0:
            return None
        # Best bound first, so later pairs that cannot beat the best found are skipped.
        bounds = 2 * overlap[survivors] / (m + lengths[survivors])
        best: Match | None = None
        for doc_id, bound in sorted(zip(survivors.tolist(), bounds.tolist()), key=lambda p: -p[1]):
            if best is not None and bound + _SLACK <= best.score:
                break
            doc = self._docs[doc_id]
            self.pairs_scored += 1
            score = fmeasure(lcs_length(cand, doc), len(doc), m)
            if score > self.floor and (best is None or score > best.score):
                best = Match(score, doc_id, self.texts[doc_id])
        return best

    def add(self, text: str, tokens: list[int] | None = None) -> int:
        """Add a text to the pool; returns its position."""
        doc = self.ids(text) if tokens is None else tokens
        doc_id = len(self._docs)
        self.texts.append(text)
        self._docs.append(doc)
        if doc_id >= len(self._lengths):
            self._lengths = np.concatenate([self._lengths, np.zeros_like(self._lengths)])
        self._lengths[doc_id] = len(doc)
        for eid in self._element_ids(doc, True):
            buf, used = self._postings[eid], self._fill[eid]
            if used == len(buf):
                buf = self._postings[eid] = np.concatenate([buf, np.empty_like(buf)])
            buf[used] = doc_id
            self._fill[eid] = used + 1
        return doc_id

    def check_and_add(self, text: str, threshold: float) -> tuple[bool, Match | None]:
        """Self-Instruct's rule: reject when the best score exceeds ``threshold``, else add.

        Returns (accepted, the best match above the floor or None).
        """
        if threshold < self.floor:
            raise ValueError("threshold below the index floor cannot be decided exactly")
        tokens = self.ids(text)
        match = self.best(text, tokens)
        if match is not None and match.score > threshold:
            return False, match
        self.add(text, tokens)
        return True, match

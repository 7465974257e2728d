"""Benchmark of the Self-Instruct generator: request throughput and the ROUGE-L filter.

    python benchmarks/generate/run.py            # both parts (about 3-4 minutes)
    python benchmarks/generate/run.py --quick    # smaller sizes, for a smoke run

1. Throughput: the full pipeline (``sftdata.generate.generate``) against a loopback
   OpenAI-compatible server with a fixed 50 ms latency per request, at concurrency 1 and
   16; requests/s, median of 3 runs each. Target: concurrency 16 >= 10x concurrency 1.
2. ROUGE-L filter: ``RougeIndex.check_and_add`` over 50,000 candidate instructions
   against a pool that grows to 50,000 (target < 120 s on 2 cores); and, side by side
   on a 2,000-candidate slice, the straightforward ``rouge_score`` loop that scores each
   candidate against every pool entry (Self-Instruct's method without its process pool),
   checking that both make the same accept/reject decision for every candidate.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sftdata.generate import GenerateConfig, generate
from sftdata.generate.rouge import RougeIndex
from sftdata.generate.seeds import load_seeds

THRESHOLD = 0.7


@contextlib.contextmanager
def server_process(latency: float):
    """The fake server in its own process (it must not share the client's GIL)."""
    proc = subprocess.Popen([sys.executable, "-m", "sftdata.generate.fake_server",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def throughput(url: str, concurrency: int, num: int, repeats: int) -> float:
    """Median requests/s of full generation runs at one concurrency."""
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GenerateConfig(num=num, output=Path(tmp) / "out.jsonl", base_url=url,
                                 model="fake", concurrency=concurrency)
            start = time.perf_counter()
            summary = generate(cfg)
            elapsed = time.perf_counter() - start
            assert summary.complete, summary
            rates.append(summary.requests / elapsed)
    return statistics.median(rates)


def candidates(n: int, seed: int, seeds: list[str]) -> list[str]:
    """Instruction-like texts: common English words from the seed tasks at Zipf-like
    frequencies mixed with a long tail of rare words, 8-25 tokens, with 10% near-copies
    (one word changed) of earlier texts so that the filter has work to reject."""
    rng = random.Random(seed)
    common = sorted({w for s in seeds for w in s.lower().split() if w.isalpha()})
    rare = [f"{a}{b}{c}" for a in "bcdfgklmnprstvz" for b in "aeiou" for c in
            ("lan", "mor", "tek", "vis", "dru", "pha", "quo", "ster", "wyn", "zel")]
    vocab = common + rare
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.10:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choices(vocab, weights, k=rng.randint(8, 25))).capitalize() + ".")
    return out


def rouge_baseline(pool: list[str], cands: list[str]) -> tuple[list[bool], float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(pool)
    decisions = []
    start = time.perf_counter()
    for text in cands:
        best = max((scorer.score(p, text)["rougeL"].fmeasure for p in pool), default=0.0)
        accepted = best <= THRESHOLD
        decisions.append(accepted)
        if accepted:
            pool.append(text)
    return decisions, time.perf_counter() - start


def rouge_indexed(pool: list[str], cands: list[str]) -> tuple[list[bool], float, RougeIndex]:
    start = time.perf_counter()
    index = RougeIndex(floor=THRESHOLD, texts=pool)
    decisions = [index.check_and_add(text, THRESHOLD)[0] for text in cands]
    return decisions, time.perf_counter() - start, index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--part", choices=("all", "throughput", "rouge"), default="all")
    args = parser.parse_args()
    big, prefill, slice_n = (5_000, 500, 300) if args.quick else (50_000, 5_000, 2_000)
    repeats = 1 if args.quick else 3

    ok = True
    if args.part in ("all", "throughput"):
        ok &= part_throughput(args.quick, repeats)
    if args.part in ("all", "rouge"):
        ok &= part_rouge(big, prefill, slice_n)
    print("\nall targets met" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


def part_throughput(quick: bool, repeats: int) -> bool:
    print("== throughput: loopback server, 50 ms per request, full pipeline ==")
    with server_process(0.05) as url:
        throughput(url, 4, 5, 1)  # warm-up: imports and first connections are not measured
        r1 = throughput(url, 1, 10 if quick else 20, repeats)
        r16 = throughput(url, 16, 60 if quick else 200, repeats)
    print(f"concurrency  1: {r1:8.1f} requests/s (median of {repeats})")
    print(f"concurrency 16: {r16:8.1f} requests/s (median of {repeats})")
    print(f"ratio 16 vs 1: {r16 / r1:.1f}x (target >= 10x)")
    return r16 / r1 >= 10


def part_rouge(big: int, prefill: int, slice_n: int) -> bool:
    seeds = [s.instruction for s in load_seeds()[0]]
    texts = candidates(big + prefill, seed=1, seeds=seeds)
    pool0, cands = seeds + texts[:prefill], texts[prefill:]

    print(f"\n== ROUGE-L filter: {len(cands):,} candidates, pool starts at {len(pool0):,} ==")
    decisions, seconds, index = rouge_indexed(pool0, cands)
    print(f"indexed filter: {seconds:7.1f} s, accepted {sum(decisions):,}, rejected "
          f"{len(decisions) - sum(decisions):,}, final pool {len(index):,}, exact LCS on "
          f"{index.pairs_scored:,} pairs (target < 120 s)")

    sl = cands[:slice_n]
    print(f"\n== side by side on a {slice_n:,}-candidate slice (pool starts at {len(seeds)} seeds) ==")
    base_dec, base_s = rouge_baseline(seeds, sl)
    idx_dec, idx_s, _ = rouge_indexed(seeds, sl)
    same = sum(a == b for a, b in zip(base_dec, idx_dec))
    print(f"rouge_score loop: {base_s:7.2f} s  ({sum(base_dec)} accepted)")
    print(f"indexed filter:   {idx_s:7.2f} s  ({sum(idx_dec)} accepted)")
    print(f"speed-up: {base_s / idx_s:.0f}x; same decision on {same:,} / {len(sl):,} candidates")
    full_pairs = sum(len(pool0) + i for i in range(len(cands)))
    slice_pairs = sum(len(seeds) + i for i in range(len(sl)))
    print(f"(the rouge_score loop would need ~{base_s * full_pairs / slice_pairs / 3600:.1f} h for "
          f"the full run at the slice's rate of pairs/s)")
    return same == len(sl) and seconds < 120


if __name__ == "__main__":
    sys.exit(main())

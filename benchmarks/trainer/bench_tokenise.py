"""Tokenising speed: one process (the trainer before) vs parallel workers vs a cache hit.

    python benchmarks/trainer/bench_tokenise.py [--workers N] [--repeat 3] [--copies 4]

Tokenises the shared real-world files (LLaMA-Factory's alpaca_en_demo, and the glaive
tool-call file with sftdata's ChatML-with-tools template) with the bundled SmolLM2
tokenizer exactly as `sftdata train` does (loss masks, max_length 2048), ``--copies``
times over (distinct records: each copy's texts get a suffix, so the cache cannot help
inside one pass). Prints tokens/s per mode (median of ``--repeat``) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sftdata.local_model import load_tokenizer
from sftdata.trainer.data import MaskOptions, prepare_tokenizer
from sftdata.trainer.evaluate import load_records
from sftdata.trainer.tokencache import cached_tokenise, default_workers, tokenise_all

REALWORLD = Path(__file__).resolve().parents[3] / "shared" / "data" / "realworld"


def _copies(records: list[dict], n: int) -> list[dict]:
    out = []
    for c in range(n):
        for r in records:
            messages = [{**m, "content": f"{m['content']} ({c})"} if isinstance(m.get("content"), str) else m
                        for m in r["messages"]]
            out.append({**r, "messages": messages})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    sets = [("alpaca_en_demo", "chatml"), ("glaive_toolcall_en_demo", "chatml-tools")]
    print(f"load average {os.getloadavg()[0]:.2f}; {args.workers} workers; median of {args.repeat}")
    print(f"{'file':26}{'tokens':>10}{'1 process tok/s':>17}{'workers tok/s':>15}{'cache hit tok/s':>17}"
          f"{'workers/1':>11}{'cache/1':>9}")
    for name, template in sets:
        records = _copies(load_records(REALWORLD / f"{name}.json"), args.copies)
        tokenizer = prepare_tokenizer(load_tokenizer(), template)
        options = MaskOptions()
        timings: dict[str, list[float]] = {"one": [], "workers": [], "cache": []}
        tokens = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            single = tokenise_all(tokenizer, records, 2048, options, workers=1)
            timings["one"].append(time.perf_counter() - t0)
            tokens = sum(len(e) for r in single for e in r.examples)
            t0 = time.perf_counter()
            tokenise_all(tokenizer, records, 2048, options, workers=args.workers)
            timings["workers"].append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as cache:
                cached_tokenise(tokenizer, records, 2048, options, args.workers, Path(cache))
                t0 = time.perf_counter()
                cached_tokenise(tokenizer, records, 2048, options, args.workers, Path(cache))
                timings["cache"].append(time.perf_counter() - t0)
        rate = {k: tokens / statistics.median(v) for k, v in timings.items()}
        print(f"{name:26}{tokens:>10,}{rate['one']:>17,.0f}{rate['workers']:>15,.0f}{rate['cache']:>17,.0f}"
              f"{rate['workers'] / rate['one']:>10.2f}x{rate['cache'] / rate['one']:>8.1f}x")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

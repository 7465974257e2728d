"""The default filter set over the dedup benchmark's generated corpus (1,000,000
records of ~100 words by default, 5% of them given a low-quality response): total
time, per-step time, and drops.

    python benchmarks/filters/run.py                  # 1,000,000 records
    python benchmarks/filters/run.py --records 200000 --repeats 1

Target: under 60 s for 1,000,000 records on 2 cores. Times are medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dedup"))


BAD = [  # planted low-quality responses: each default filter has something to catch
    lambda r: "As an AI language model, I cannot do that. " + r,
    lambda r: "I'm sorry, but I can't help with that.",
    lambda r: " ".join(["again and again"] * 40),
    lambda r: "   ",
    lambda r: r.replace(" ", " Ã© ", 3),
    lambda r: r + " <br><br><p>read more</p>&nbsp;",
]


def plant_bad(frame, share: float = 0.05, seed: int = 1):
    """Replace the response of ``share`` of the records by a low-quality one."""
    import numpy as np
    import polars as pl

    from sftdata.records import FRAME_SCHEMA

    rng = np.random.default_rng(seed)
    prompts = frame["messages"].list.get(0).struct.field("content")
    responses = frame["messages"].list.get(1).struct.field("content").to_list()
    for row in np.flatnonzero(rng.random(frame.height) < share).tolist():
        responses[row] = BAD[row % len(BAD)](responses[row])
    return frame.with_columns(
        pl.concat_list(pl.struct(role=pl.lit("user"), content=prompts),
                       pl.struct(role=pl.lit("assistant"), content=pl.Series(responses)))
        .alias("messages")).cast(dict(FRAME_SCHEMA))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from corpus import make_corpus

    from sftdata.rejects import count_reasons
    from sftdata.steps.filters import default_filter_steps, run_steps

    frame = plant_bad(make_corpus(args.records)[0])
    load_before = os.getloadavg()[0]
    totals, per_step = [], {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        kept, rejects, reports = run_steps(frame, default_filter_steps())
        totals.append(time.perf_counter() - start)
        for r in reports:
            per_step.setdefault(r.step, []).append(r.seconds)
    total = statistics.median(totals)
    print(f"default filter set over {args.records:,} records: {total:.1f} s "
          f"({args.records / total:,.0f} rec/s), kept {kept.height:,}, dropped {len(rejects):,}")
    for step, secs in per_step.items():
        print(f"  {step:<14} {statistics.median(secs):7.2f} s")
    print("  drops: " + ", ".join(f"{k} {v:,}" for k, v in count_reasons(rejects).items()))
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (other work on the machine slows every figure)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    scaled = total * 1_000_000 / args.records
    print(f"time for 1,000,000 records: {scaled:.1f} s (target < 60 s; ratio {60 / scaled:.2f}x under)"
          f"; peak memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()

"""Near-duplicate dedup: sftdata's vectorised MinHash LSH vs the straightforward
datasketch loop, side by side on the same generated corpus.

    python benchmarks/dedup/run.py                 # 1,000,000 records (about 3 min)
    python benchmarks/dedup/run.py --records 200000 --slice 10000 --repeats 1

The baseline is one ``datasketch.MinHash(num_perm=128)`` per record, ``update_batch``
of its word-3-gram shingles, then ``MinHashLSH.query`` and ``insert``. It runs at
~1,700 records/s, so it is timed on a slice (``--slice``, default 20,000 records) and
its rate is extrapolated to the full corpus; sftdata runs on the slice (for recall at
equal footing) and on the full corpus. Each measurement runs in a fresh subprocess so
its peak memory (ru_maxrss) is its own. Times are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: on Linux that is
    inherited from the parent across fork/exec, so a child would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _recall(dropped: set[int], plants: dict[int, int], rows: int) -> float:
    inside = [r for r, s in plants.items() if r < rows and s < rows]
    return sum(r in dropped for r in inside) / max(len(inside), 1)


def run_ours(path: str, rows: int) -> dict:
    import polars as pl

    from sftdata.steps.dedup import NearDedup

    frame = pl.scan_parquet(path).head(rows).collect()
    plants = json.loads(Path(path + ".plants.json").read_text())
    plants = {int(k): v for k, v in plants.items()}
    start = time.perf_counter()
    result = NearDedup(fields="both")(frame)
    seconds = time.perf_counter() - start
    dropped = set(result.rejected["id"].str.slice(1).cast(int).to_list())
    return {"seconds": seconds, "recall": _recall(dropped, plants, rows),
            "dropped": len(dropped), "peak_mib": _peak_mib()}


def run_baseline(path: str, rows: int) -> dict:
    import polars as pl
    from datasketch import MinHash, MinHashLSH

    from sftdata.steps.dedup import field_series

    frame = pl.scan_parquet(path).head(rows).collect()
    texts = field_series(frame, "both").to_list()
    plants = {int(k): v for k, v in json.loads(Path(path + ".plants.json").read_text()).items()}
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    dropped = set()
    for i, text in enumerate(texts):
        words = text.lower().split()
        shingles = {" ".join(words[k : k + 3]).encode() for k in range(max(len(words) - 2, 1))}
        m = MinHash(num_perm=128)
        m.update_batch(list(shingles))
        if lsh.query(m):
            dropped.add(i)
        lsh.insert(str(i), m)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "recall": _recall(dropped, plants, rows),
            "dropped": len(dropped), "peak_mib": _peak_mib()}


def child(kind: str, path: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, path, str(rows)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_runs(kind: str, path: str, rows: int, repeats: int) -> dict:
    runs = [child(kind, path, rows) for _ in range(repeats)]
    best = dict(runs[0])
    best["seconds"] = statistics.median(r["seconds"] for r in runs)
    best["peak_mib"] = max(r["peak_mib"] for r in runs)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, rows = args.child
        fn = run_ours if kind == "ours" else run_baseline
        print(json.dumps(fn(path, int(rows))))
        return

    from corpus import make_corpus

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "corpus.parquet")
        frame, plants = make_corpus(args.records)
        frame.write_parquet(path)
        Path(path + ".plants.json").write_text(json.dumps(plants))
        del frame
        print(f"corpus: {args.records:,} records, {len(plants):,} planted near-duplicates")
        base = median_runs("baseline", path, args.slice, args.repeats)
        ours_slice = median_runs("ours", path, args.slice, args.repeats)
        ours = median_runs("ours", path, args.records, args.repeats)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    base_rate = args.slice / base["seconds"]
    ours_rate = args.records / ours["seconds"]
    print(f"datasketch loop  {args.slice:>9,} rec: {base['seconds']:8.2f} s  {base_rate:9,.0f} rec/s"
          f"  recall {base['recall']:.3f}  peak {base['peak_mib']:,.0f} MiB")
    print(f"sftdata (slice)  {args.slice:>9,} rec: {ours_slice['seconds']:8.2f} s"
          f"  {args.slice / ours_slice['seconds']:9,.0f} rec/s  recall {ours_slice['recall']:.3f}")
    print(f"sftdata (full)   {args.records:>9,} rec: {ours['seconds']:8.2f} s  {ours_rate:9,.0f} rec/s"
          f"  recall {ours['recall']:.3f}  peak {ours['peak_mib']:,.0f} MiB")
    print(f"baseline extrapolated to {args.records:,}: {args.records / base_rate:,.0f} s")
    print(f"speed-up vs datasketch loop: {ours_rate / base_rate:.1f}x (target >= 10x); "
          f"peak memory {ours['peak_mib'] / 1024:.2f} GiB (target < 4 GiB)")


if __name__ == "__main__":
    main()

"""The commands end to end, file to file, as a user runs them: `sftdata filter`,
`sftdata dedup` and `sftdata convert --to openai` on 1M Alpaca records written by
`json.dumps` (default separators, non-ASCII escaped: the common case) and on 1M ShareGPT
records, each beside its baseline, in one run.

    python benchmarks/commands/run.py                          # 1,000,000 records, medians of 3
    python benchmarks/commands/run.py --records 200000 --runs 1
    python benchmarks/commands/run.py --records 10000000 --runs 1 --formats alpaca --skip-baselines

Each command runs in its own subprocess under `/usr/bin/time`, so its wall time and
peak resident memory are the command's own; the figures are medians of `--runs`. The
baselines, side by side:

- filter: the default filters' own time, `run_chain` over the records already in memory
  (median of `--runs`, in a subprocess); target: the command within 1.5x of it.
- dedup: rensa's plain Python loop (`RMinHash` + `RMinHashLSH`, 128 permutations, word
  5-grams, candidates verified at Jaccard >= 0.7, as `sftdata dedup` verifies) over the
  same texts held in memory, on the first `--baseline-n` records (its rate is
  extrapolated); sftdata's dedup also runs on that slice, so recall on the planted
  near-duplicates compares on equal footing. Target: >= 3x the loop's records/s.
- peak memory targets at 10M records: convert and filter < 1.5 GiB, dedup < 4 GiB.

The data (`corpus.make_corpus`: ~12-word prompts and ~90-word responses over a Zipf
vocabulary, 10% planted near-duplicates, 5% low-quality responses, an `id` per record)
is written to `--work` (default /tmp/sftdata-bench) and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sftdata.rejects import default_rejects_path  # where the commands put their rejects

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "dedup"))
SFTDATA = str(Path(sys.executable).parent / "sftdata")
BLOCK = 200_000  # records generated per step


def write_data(work: Path, n: int, fmt: str) -> Path:
    """The benchmark file for ``fmt`` (made once; ``plants-N.json`` beside it), written in
    corpora of at most 1M records (each its own seed) so that 10M fit in memory."""
    path = work / f"{fmt}-{n}.jsonl"
    if path.exists():
        return path
    import importlib.util

    import numpy as np
    from corpus import make_corpus

    spec = importlib.util.spec_from_file_location("filters_bench", HERE.parent / "filters" / "run.py")
    filters_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters_bench)
    bad_responses = filters_bench.BAD  # the planted low-quality responses of the filter benchmark
    tmp, plants_all = path.with_suffix(".tmp"), {}
    with open(tmp, "w", encoding="utf-8") as out:
        for part, base in enumerate(range(0, n, 1_000_000)):
            size = min(1_000_000, n - base)
            frame, plants = make_corpus(size, seed=part)
            plants_all.update({base + r: base + s for r, s in plants.items()})
            bad = np.flatnonzero(np.random.default_rng(part + 1).random(size) < 0.05)
            bad_set = set(bad.tolist()) - set(plants) - set(plants.values())  # duplicates stay duplicates
            for start in range(0, size, BLOCK):
                block = frame.slice(start, BLOCK)
                prompts = block["messages"].list.get(0).struct.field("content").to_list()
                answers = block["messages"].list.get(1).struct.field("content").to_list()
                for i, (p, a) in enumerate(zip(prompts, answers), start=start):
                    if i in bad_set:
                        a = bad_responses[i % len(bad_responses)](a)
                    rid = f"r{base + i}"
                    if fmt == "alpaca":
                        row = {"id": rid, "instruction": p, "input": "", "output": a}
                    else:
                        row = {"id": rid, "conversations": [{"from": "human", "value": p},
                                                            {"from": "gpt", "value": a}]}
                    out.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    (work / f"plants-{n}.json").write_text(json.dumps(plants_all))
    return path


def timed(args: list[str]) -> dict:
    """Run a command under /usr/bin/time: wall seconds and peak RSS (its own)."""
    start = time.perf_counter()
    env = {**os.environ, "COLUMNS": "4000"}  # the summary on one line per entry
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"seconds": seconds, "peak_mib": peak_kb / 1024, "stderr": proc.stderr}


def steps_seconds(stderr: str) -> float:
    """The sum of the steps' own times in a command's summary (``steps: a 1.2s, ...``)."""
    line = next(ln for ln in stderr.splitlines() if ln.startswith("steps:"))
    return sum(float(part.rsplit(" ", 1)[1].rstrip("s")) for part in line[6:].split(","))


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run_command(name: str, src: Path, work: Path, runs: int) -> dict:
    out = work / f"out-{name}-{src.stem}.jsonl"
    args = {"filter": ["filter", src, "-o", out], "dedup": ["dedup", src, "-o", out],
            "convert": ["convert", src, "-o", out, "--to", "openai"]}[name]
    results = []
    for _ in range(runs):
        out.unlink(missing_ok=True)
        subprocess.run(["sync"])
        results.append(timed([SFTDATA, *map(str, args)]))
        if name != "convert":
            results[-1]["steps"] = steps_seconds(results[-1]["stderr"])
    out.unlink(missing_ok=True)  # only its rejects are read later; 10M outputs are 7 GB each
    return {"seconds": median(results, "seconds"), "peak_mib": max(r["peak_mib"] for r in results),
            "steps": median(results, "steps") if name != "convert" else None,
            "runs": [round(r["seconds"], 2) for r in results], "out": out}


# -- baselines, each run as `python run.py --child NAME ...` ---------------------------
def child_filters(src: str, runs: int) -> dict:
    from sftdata.convert import read_canonical
    from sftdata.steps.base import run_chain
    from sftdata.steps.filters import default_filter_steps

    frame = read_canonical(src).frame
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_chain(frame, default_filter_steps())
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "runs": [round(t, 2) for t in times]}


def texts_of(src: str, n: int) -> list[str]:
    """The text sftdata's dedup compares (prompt and response, ``fields=both``)."""
    from sftdata.convert import read_canonical
    from sftdata.steps.dedup import field_series

    import polars as pl

    frame = read_canonical(src).frame.head(n)
    return field_series(frame, "both").to_list() if frame.height else pl.Series([]).to_list()


def child_rensa(src: str, n: int, runs: int) -> dict:
    from rensa import RMinHash, RMinHashLSH

    from sftdata.steps.dedup import NearDedupParams

    texts = texts_of(src, n)
    bands, _ = NearDedupParams(threshold=0.7).band_layout()
    times, dropped = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        lsh, kept, dropped = RMinHashLSH(threshold=0.7, num_perm=128, num_bands=bands), {}, set()
        for i, text in enumerate(texts):
            words = text.lower().split()
            shingles = [" ".join(words[k:k + 5]) for k in range(max(len(words) - 4, 1))]
            m = RMinHash(num_perm=128, seed=42)
            m.update(shingles)
            if any(m.jaccard(kept[c]) >= 0.7 for c in lsh.query(m)):
                dropped.add(i)
                continue
            lsh.insert(i, m)
            kept[i] = m
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "runs": [round(t, 2) for t in times],
            "dropped": sorted(dropped), "records": len(texts)}


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "filters":
        print(json.dumps(child_filters(rest[0], int(rest[1]))))
    else:
        print(json.dumps(child_rensa(rest[0], int(rest[1]), int(rest[2]))))


def baseline(*args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def recall(dropped: set[int], plants: dict[int, int], limit: int) -> float:
    inside = [r for r, s in plants.items() if r < limit and s < limit]
    return sum(r in dropped for r in inside) / max(len(inside), 1)


def dropped_rows(rejects: Path) -> set[int]:
    out = set()
    with open(rejects, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["reason"] in ("exact_duplicate", "near_duplicate"):
                out.add(int(r["id"][1:]))
    return out


def slice_file(src: Path, n: int) -> Path:
    path = src.with_name(f"{src.stem}-first{n}.jsonl")
    if not path.exists():
        with open(src, "rb") as f, open(path, "wb") as out:
            for i, line in enumerate(f):
                if i >= n:
                    break
                out.write(line)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-n", type=int, default=200_000)
    ap.add_argument("--formats", nargs="+", default=["alpaca", "sharegpt"])
    ap.add_argument("--commands", nargs="+", default=["filter", "dedup", "convert"])
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sftdata-bench"))
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"records": args.records, "load_before": os.getloadavg()[0], "cpus": os.cpu_count()}
    for fmt in args.formats:
        src = write_data(args.work, args.records, fmt)
        plants = {int(k): v for k, v in json.loads((args.work / f"plants-{args.records}.json").read_text()).items()}
        print(f"{fmt}: {src} ({src.stat().st_size / 2**20:,.0f} MiB)", flush=True)
        for name in args.commands:
            res = run_command(name, src, args.work, args.runs)
            rate = args.records / res["seconds"]
            line = (f"  sftdata {name:<8} {res['seconds']:8.1f} s  {rate:>9,.0f} rec/s  peak {res['peak_mib']:>7,.0f} MiB"
                    f"  runs {res['runs']}")
            entry = {**{k: v for k, v in res.items() if k != "out"}, "rate": rate}
            if name == "filter" and not args.skip_baselines:
                own = baseline("filters", src, args.runs)
                entry["filters_own"] = own
                line += (f"\n    filters' own time (in memory) {own['seconds']:.1f} s; steps in the command "
                         f"{res['steps']:.1f} s; end to end / own = {res['seconds'] / own['seconds']:.2f}x (target <= 1.5x)")
            if name == "dedup":
                ours = dropped_rows(default_rejects_path(res["out"]))
                entry["recall"] = recall(ours, plants, args.records)
                line += f"  recall {entry['recall']:.3f}"
                if not args.skip_baselines:
                    n = min(args.baseline_n, args.records)
                    first = slice_file(src, n)
                    base = baseline("rensa", first, n, args.runs)
                    small = run_command("dedup", first, args.work, args.runs)
                    small_drop = dropped_rows(default_rejects_path(small["out"]))
                    base_rate = n / base["seconds"]
                    entry["rensa"] = {"records": n, "seconds": base["seconds"], "rate": base_rate,
                                      "recall": recall(set(base["dropped"]), plants, n), "runs": base["runs"]}
                    entry["slice"] = {"records": n, "seconds": small["seconds"], "rate": n / small["seconds"],
                                      "recall": recall(small_drop, plants, n)}
                    line += (f"\n    rensa loop on {n:,}: {base['seconds']:.1f} s ({base_rate:,.0f} rec/s), recall "
                             f"{entry['rensa']['recall']:.3f}; sftdata dedup on the same {n:,}: {small['seconds']:.1f} s, "
                             f"recall {entry['slice']['recall']:.3f}\n    sftdata dedup end to end / rensa loop: "
                             f"{rate / base_rate:.2f}x (target >= 3x)")
            print(line, flush=True)
            results[f"{fmt}/{name}"] = entry
    results["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min) before / after: {results['load_before']:.1f} / {results['load_after']:.1f} "
          f"on {results['cpus']} cores")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

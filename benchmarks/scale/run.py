"""One recipe, two engines: ``sftdata run`` on the local engine and on Ray (a local
cluster of ``--workers`` CPUs) over the same generated data, side by side.

    python benchmarks/scale/run.py                      # 1,000,000 records
    python benchmarks/scale/run.py --records 100000 --repeats 1

The recipe is the quickstart's data part at scale: the default filters, exact dedup,
near dedup, and a mix with a general source (20%). The input is the dedup benchmark's
corpus (~100 words a record, 10% planted near-copies) plus 5% exact copies written
differently and 3% planted low-quality answers. Each engine's run is the installed
command in a subprocess; while it runs, every process it starts (the driver, Ray's
workers and Ray's own services) is sampled for its resident memory. Printed: wall time
per stage and in total (medians of ``--repeats``), peak RSS of the driver, of the
largest worker and of all the run's processes together, whether ``data.jsonl`` and the
rejects are identical, and what the Ray shuffles moved per million records (the
figures benchmarks/scale/PLAN.md scales to 1B records).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dedup"))
SFTDATA = Path(sys.executable).with_name("sftdata")

RECIPE = """\
# Run: sftdata run recipe.yaml [--engine ray]   (written by benchmarks/scale/run.py)
name: scale
run_dir: {run_dir}
inputs:
  - {{path: main.parquet, name: main_in}}
steps:
  - default_filters: {{}}
  - exact_dedup: {{}}
  - near_dedup: {{threshold: 0.7}}
mix:
  sources:
    - {{name: main}}
    - {{path: general.parquet, name: general, ratio: 0.2}}
  seed: 0
output: {{format: sharegpt, file: data.jsonl}}
audit: {{enabled: false}}
"""

BAD = [lambda r: "As an AI language model, I cannot do that. " + r,
       lambda r: "I'm sorry, but I can't help with that.",
       lambda r: " ".join(["again and again"] * 40)]


def make_inputs(folder: Path, records: int) -> None:
    """main.parquet (canonical records with near and exact copies and bad answers) and
    general.parquet (a fifth as many, for the mix)."""
    from corpus import make_corpus

    frame, _ = make_corpus(records, dup_share=0.1, seed=0)
    rng = np.random.default_rng(1)
    n = frame.height
    take = np.arange(n)
    copies = rng.choice(n, size=n // 20, replace=False)  # exact copies, upper-cased
    take[copies] = rng.integers(0, n, size=len(copies))
    copied = np.zeros(n, dtype=bool)
    copied[copies] = True
    upper = pl.col("messages").list.eval(pl.element().struct.with_fields(pl.field("content").str.to_uppercase()))
    frame = frame[take].with_columns(
        pl.when(pl.Series(copied)).then(upper).otherwise(pl.col("messages")).alias("messages"),
        pl.Series("id", [f"r{i}" for i in range(n)]))
    bad = np.zeros(n, dtype=bool)
    bad[rng.choice(n, size=n // 33, replace=False)] = True
    rows = frame.filter(pl.Series(bad)).to_dicts()
    for i, row in enumerate(rows):
        last = row["messages"][-1]
        row["messages"][-1] = {**last, "content": BAD[i % len(BAD)](last["content"])}
    frame = pl.concat([frame.filter(~pl.Series(bad)), pl.DataFrame(rows, schema=frame.schema)])
    frame.write_parquet(folder / "main.parquet")
    general, _ = make_corpus(max(records // 5, 1000), dup_share=0.0, seed=7)
    general.with_columns(pl.concat_str(pl.lit("g"), pl.col("id")).alias("id")).write_parquet(folder / "general.parquet")


class Sampler(threading.Thread):
    """Peak RSS of a process and of everything it starts, sampled every 0.2 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.peak: dict[int, tuple[str, int]] = {}  # pid -> (kind, peak bytes)
        self.total_peak = 0

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    @staticmethod
    def _kind(pid: int, root: int) -> str:
        if pid == root:
            return "driver"
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            return "other"
        return "worker" if cmd.startswith("ray::") and "Agent" not in cmd else "ray services"

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                rss = next((int(line.split()[1]) * 1024 for line in status.splitlines()
                            if line.startswith("VmRSS:")), 0)
                total += rss
                kind = self._kind(pid, self.pid)
                if rss > self.peak.get(pid, ("", 0))[1]:
                    self.peak[pid] = (kind, rss)
            self.total_peak = max(self.total_peak, total)
            time.sleep(0.2)

    def figures(self) -> dict:
        by_kind: dict[str, list[int]] = {}
        for kind, rss in self.peak.values():
            by_kind.setdefault(kind, []).append(rss)
        mib = lambda b: round(b / 2**20)  # noqa: E731
        return {"driver_mib": mib(max(by_kind.get("driver", [0]))),
                "largest_worker_mib": mib(max(by_kind.get("worker", [0]))),
                "workers": len(by_kind.get("worker", [])),
                "ray_services_mib": mib(sum(by_kind.get("ray services", [0]))),
                "all_processes_mib": mib(self.total_peak)}


def run_engine(folder: Path, engine: str, workers: int, tag: str) -> dict:
    run_dir = folder / f"run-{tag}"
    recipe = folder / f"{tag}.yaml"
    recipe.write_text(RECIPE.format(run_dir=run_dir), encoding="utf-8")
    env = {**os.environ, "SFTDATA_RAY_CPUS": str(workers), "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    proc = subprocess.Popen([str(SFTDATA), "run", str(recipe), "--engine", engine], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{engine} run failed:\n{err[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    stages = {s["step"]: s["seconds"] for s in summary["stages"]}
    return {"wall_s": wall, "stages": stages, "memory": sampler.figures(), "run_dir": run_dir,
            "engine_stats": summary.get("engine_stats", {}), "records": summary["records"]}


def same_outputs(a: Path, b: Path) -> tuple[bool, bool]:
    data = (a / "data.jsonl").read_bytes() == (b / "data.jsonl").read_bytes()
    rej = sorted((a / "rejects.jsonl").read_text().splitlines()) == sorted((b / "rejects.jsonl").read_text().splitlines())
    return data, rej


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="sftdata-scale."))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "main.parquet").exists():
        t = time.perf_counter()
        make_inputs(folder, args.records)
        print(f"inputs: {args.records:,} records in {folder} ({time.perf_counter() - t:.0f} s)")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs = {"local": [], "ray": []}
    for r in range(args.repeats):
        for engine in ("local", "ray"):
            runs[engine].append(run_engine(folder, engine, args.workers, f"{engine}{r}"))
            print(f"  {engine} run {r + 1}: {runs[engine][-1]['wall_s']:.1f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    med = {e: statistics.median(x["wall_s"] for x in v) for e, v in runs.items()}
    last = {e: v[-1] for e, v in runs.items()}
    data_same, rejects_same = same_outputs(last["local"]["run_dir"], last["ray"]["run_dir"])
    print(f"\n{args.records:,} records, recipe: default_filters, exact_dedup, near_dedup, mix "
          f"(Ray: local cluster, {args.workers} CPUs); medians of {args.repeats}")
    print(f"{'':28}{'local':>12}{'ray':>12}{'ray/local':>11}")
    for stage in last["local"]["stages"]:
        a = statistics.median(x["stages"][stage] for x in runs["local"])
        b = statistics.median(x["stages"][stage] for x in runs["ray"])
        print(f"{stage + ' (s)':28}{a:>12.1f}{b:>12.1f}{b / a if a else float('nan'):>10.2f}x")
    print(f"{'wall, whole command (s)':28}{med['local']:>12.1f}{med['ray']:>12.1f}{med['ray'] / med['local']:>10.2f}x")
    for key, label in (("driver_mib", "peak RSS driver (MiB)"), ("largest_worker_mib", "peak RSS one worker (MiB)"),
                       ("workers", "worker processes"), ("ray_services_mib", "peak RSS Ray services (MiB)"),
                       ("all_processes_mib", "peak RSS all together (MiB)")):
        print(f"{label:28}{last['local']['memory'][key]:>12,}{last['ray']['memory'][key]:>12,}")
    print(f"{'records out':28}{last['local']['records']:>12,}{last['ray']['records']:>12,}")
    print(f"identical data.jsonl: {data_same}; identical rejects (as sets of lines): {rejects_same}")
    per_m = 1e6 / args.records
    for step, figures in last["ray"]["engine_stats"].items():
        shown = ", ".join(f"{k} {v * per_m / 2**20:,.1f} MiB" if k.endswith("bytes") else f"{k} {v * per_m:,.0f}"
                          for k, v in figures.items() if k != "records")
        print(f"ray {step}, per million records: {shown}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

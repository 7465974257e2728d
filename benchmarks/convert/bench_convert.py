"""Alpaca JSONL -> ShareGPT JSONL, file to file: sftdata against LLaMA-Factory's way.

Run:  python benchmarks/convert/bench_convert.py            (1,000,000 records, 3 runs)
      python benchmarks/convert/bench_convert.py --n 100000 --runs 1
      python benchmarks/convert/bench_convert.py --style spaced   (input as json.dumps writes it)

The baseline is what LLaMA-Factory does to an Alpaca file: ``datasets.load_dataset("json")``,
then ``Dataset.map`` with a per-record converter (its ``AlpacaDatasetConverter`` logic,
single process and ``batched=False`` as in its defaults), then ``to_json``. sftdata runs
``sftdata.convert.convert_file``, which is what ``sftdata convert`` runs. Each side runs in
its own subprocess (so ``ru_maxrss`` is that side's peak memory), with a fresh datasets
cache each run, in alternating order; the figures are medians. Times cover reading,
converting and writing (library imports excluded on both sides). ``--baseline-n`` runs the
baseline on the first records only and extrapolates its rate linearly (the output says so).
Before each side, the outputs and cache of earlier runs are removed and the disk synced.
Needs ``datasets`` (the dev extra).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be or "
    "had not but what all model data train answer question write explain describe list summary "
    "reason example code function value number time people system process result method "
    "language simple small large first second often never always because however therefore "
    "café naïve 数据 模型"
).split()


def generate(n: int, path: Path, seed: int = 0, style: str = "compact") -> None:
    """``n`` Alpaca records of about 150 words (half with an ``input``), as JSONL.

    ``compact`` is how polars, orjson and ``jq -c`` write JSONL; ``spaced`` is what
    ``json.dumps`` writes by default (a space after ``,`` and ``:``, non-ASCII escaped).
    """
    import polars as pl

    rng = random.Random(seed)
    pool = rng.choices(WORDS, k=200_000)
    text = " ".join(pool)
    starts = [0]
    for word in pool[:-1]:
        starts.append(starts[-1] + len(word) + 1)

    def span(words: int) -> str:
        i = rng.randrange(0, len(pool) - words)
        return text[starts[i]:starts[i + words] - 1]

    instructions, inputs, outputs = [], [], []
    for _ in range(n):
        instructions.append(span(rng.randint(8, 20)).capitalize() + "?")
        inputs.append(span(rng.randint(10, 40)) if rng.random() < 0.5 else "")
        body = span(rng.randint(100, 140)).capitalize() + "."
        if rng.random() < 0.3:  # some multi-paragraph answers, with quotes
            cut = body.find(" ", len(body) // 2)
            body = f'{body[:cut]}.\n\n"{body[cut + 1:]}"'
        outputs.append(body)
    frame = pl.DataFrame({"instruction": instructions, "input": inputs, "output": outputs})
    if style == "compact":
        frame.write_ndjson(path)
        return
    with open(path, "w", encoding="utf-8") as out:
        for row in frame.iter_rows(named=True):
            out.write(json.dumps(row) + "\n")


def llamafactory_alpaca(example: dict) -> dict:
    """LLaMA-Factory's AlpacaDatasetConverter (default columns), emitting ShareGPT turns."""
    prompt = []
    if isinstance(example.get("history"), list):
        for old_prompt, old_response in example["history"]:
            prompt.append({"from": "human", "value": old_prompt})
            prompt.append({"from": "gpt", "value": old_response})
    query = []
    if example["instruction"]:
        query.append(example["instruction"])
    if example["input"]:
        query.append(example["input"])
    prompt.append({"from": "human", "value": "\n".join(query)})
    response = [{"from": "gpt", "value": example["output"]}] if isinstance(example["output"], str) else []
    return {"conversations": prompt + response}


def run_side(side: str, src: Path, dst: Path, cache: Path) -> dict:
    """One side, in this (child) process: seconds, rows and peak memory."""
    if side == "sftdata":
        from sftdata.convert import convert_file

        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        rows = convert_file(src, dst, "sharegpt").rows_out
    else:
        import datasets

        datasets.disable_progress_bars()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        data = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(cache))
        data = data.map(llamafactory_alpaca, batched=False, remove_columns=data.column_names)
        data.to_json(str(dst), lines=True, force_ascii=False)
        rows = data.num_rows
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "rows": rows, "peak_mb": peak_mb(usage),
            "cpu_seconds": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime}


def peak_mb(usage) -> float:
    """This process's peak resident memory since it started (VmHWM on Linux).

    ``ru_maxrss`` would also count the parent's peak before the fork on Linux.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return usage.ru_maxrss / 1024


def spawn(side: str, src: Path, dst: Path, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--src", str(src), "--dst", str(dst), "--cache", str(cache)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def head_conversations(path: Path, rows: int = 2000) -> list:
    """The conversations of the first rows of an output, to compare the two sides."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["conversations"] for _, line in zip(range(rows), f)]


def settle(work: Path) -> None:
    """Start each side alike: no output or cache left by the runs before, nothing unwritten.

    The next side must not pay for writing back the last side's gigabyte of output, nor
    work beside files it did not make (on a virtual machine, memory released long ago
    costs much more to touch again than memory released just now).
    """
    for leftover in (work / "sftdata.jsonl", work / "baseline.jsonl"):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    os.sync()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="records to convert")
    parser.add_argument("--baseline-n", type=int, default=None,
                        help="run the baseline on the first records only and extrapolate (default: all)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp dir)")
    parser.add_argument("--style", choices=["compact", "spaced"], default="compact",
                        help="how the input JSONL is written (default: compact, as polars writes it)")
    parser.add_argument("--side", choices=["sftdata", "baseline", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "generate":
        generate(args.n, args.dst, style=args.style)
        return
    if args.side:
        print(json.dumps(run_side(args.side, args.src, args.dst, args.cache)))
        return

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = work / "alpaca.jsonl"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--side", "generate", "--n", str(args.n), "--dst", str(src),
                        "--style", args.style],
                       check=True)
        base_n = min(args.baseline_n or args.n, args.n)
        base_src = src
        if base_n < args.n:
            base_src = work / "alpaca_head.jsonl"
            with open(src, "rb") as f, open(base_src, "wb") as out:
                for _, line in zip(range(base_n), f):
                    out.write(line)
        print(f"input: {args.n:,} Alpaca records, {args.style} JSONL, {src.stat().st_size / 1e6:,.0f} MB "
              f"(generated in {time.perf_counter() - started:.1f}s)")
        ours, theirs = [], []
        heads: dict[str, list] = {}
        for run in range(args.runs):
            order = ["sftdata", "baseline"] if run % 2 == 0 else ["baseline", "sftdata"]
            for side in order:
                settle(work)
                if side == "sftdata":
                    ours.append(spawn(side, src, work / "sftdata.jsonl", work))
                    result, heads["sftdata"] = ours[-1], head_conversations(work / "sftdata.jsonl")
                else:
                    theirs.append(spawn(side, base_src, work / "baseline.jsonl", work / "hf_cache"))
                    result, heads["baseline"] = theirs[-1], head_conversations(work / "baseline.jsonl")
                print(f"run {run + 1} {side:8s} {result['rows']:>10,} rows  {result['seconds']:7.2f} s  "
                      f"{result['rows'] / result['seconds']:>10,.0f} records/s  peak {result['peak_mb']:,.0f} MB  "
                      f"cpu {result['cpu_seconds']:.1f} s  (load average {os.getloadavg()[0]:.1f})", flush=True)
        agree = heads["sftdata"] == heads["baseline"]
        our_rate = statistics.median(r["rows"] / r["seconds"] for r in ours)
        their_rate = statistics.median(r["rows"] / r["seconds"] for r in theirs)
        note = "" if base_n == args.n else f" (measured on {base_n:,} records, rate extrapolated linearly)"
        print(f"\nmedians over {args.runs} run(s), {args.n:,} records, same machine, same run:")
        print(f"  sftdata convert_file  {our_rate:>10,.0f} records/s  {args.n / our_rate:8.1f} s   "
              f"peak {statistics.median(r['peak_mb'] for r in ours):,.0f} MB")
        print(f"  datasets.map baseline {their_rate:>10,.0f} records/s  {args.n / their_rate:8.1f} s   "
              f"peak {statistics.median(r['peak_mb'] for r in theirs):,.0f} MB{note}")
        cpu = statistics.median(r["cpu_seconds"] for r in theirs) * args.n / base_n
        print(f"  speed-up: {our_rate / their_rate:.1f}x (target: 20x); CPU seconds: "
              f"{cpu / statistics.median(r['cpu_seconds'] for r in ours):.1f}x fewer")
        print(f"  outputs hold the same conversations (first 2,000 rows): {agree}")


if __name__ == "__main__":
    main()

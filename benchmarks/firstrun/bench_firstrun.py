"""The first run as a new user meets it: the README's first block, and `sftdata train` with its defaults.

    python benchmarks/firstrun/bench_firstrun.py [--runs 3] [--part all|block|train]
                                                 [--ref HEAD] [--baseline REF [--baseline-runs N]]

block: every run starts from a fresh clone of this repository at REF (committed files
only) in a temp folder, with no virtual environment and an empty bundled-model cache
(SFTDATA_CACHE), so the one-time model conversion is included; pip's own cache is the
user's (warm on a machine that installed these packages once). The lines of the
README's first ```bash block then run in order in one shell session, as a user pastes
them, each timed, with its peak RSS. After the block, `sftdata run` runs once more in a
fresh run folder with everything warm (what every later run costs), and the model
conversion is timed alone in another empty cache (its share of the first run).

train: `sftdata train --data D -o OUT --max-steps 4` with every other option at its
default, on 24 real-world Alpaca records (the first 24 of LLaMA-Factory's
alpaca_en_demo.json in /work/shared/data/realworld, else of examples/text_to_sql.jsonl),
in the virtual environment of the last clone (or of --checkout). Each of the 4 steps is
one pass over all 24 (they fill less than one step's rows).

Peak RSS: the kernel's high-water mark of the command's processes (``wait4``'s
ru_maxrss: the largest single process), and the total RSS of its whole process tree
polled every 0.1 s (psutil). Load averages are printed beside every figure: this is a
shared 2-core machine, and a figure taken under load is slower than a quiet machine's.

With --baseline REF both refs run, one after the other in each round, and the table
puts them side by side with the ratio. Medians over --runs rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REALWORLD = Path("/work/shared/data/realworld/alpaca_en_demo.json")
TRAIN_RECORDS, TRAIN_STEPS = 24, 4
CONVERT = "from sftdata.local_model import bundled_model_dir; bundled_model_dir()"


def load() -> float:
    return os.getloadavg()[0]


def clean_env(cache: Path) -> dict[str, str]:
    """The environment of a new shell: no active virtual environment, an empty model cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv = os.environ.get("VIRTUAL_ENV")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not (venv and p.startswith(venv)) and "/.venv/" not in p)
    env.update(SFTDATA_CACHE=str(cache), PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    return env


def tree_rss_mb(pid: int) -> float:
    """Total RSS of a process and its descendants, in MiB (0 when psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def measure(command: str, cwd: Path, env: dict, log: Path) -> dict:
    """Run ``command`` in bash; its seconds, exit status, peak RSS (largest process and
    whole-tree total) and the load average before and after."""
    before = load()
    start = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n$ {command}\n".encode())
        out.flush()
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_tree = [0.0]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.1):
                peak_tree[0] = max(peak_tree[0], tree_rss_mb(proc.pid))

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"command": command, "rc": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "peak_tree_mb": round(peak_tree[0], 1),
            "load": f"{before:.1f}->{load():.1f}"}


def readme_block(clone: Path) -> list[str]:
    """The lines of the README's first ```bash block."""
    text = (clone / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def fresh_clone(ref: str, work: Path) -> Path:
    clone = work / "sftdata"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", ref], check=True)
    return clone


def in_venv(line: str) -> str:
    """A line as typed into the shell after the block's first line activated the venv."""
    return f"[ -f .venv/bin/activate ] && . .venv/bin/activate; {line}"


def run_block(ref: str, work: Path, setup_only: bool = False) -> dict:
    """One fresh clone: the README's first block line by line, then a warm `sftdata run`
    and the model conversion alone (``setup_only``: the lines before `sftdata run`)."""
    clone = fresh_clone(ref, work)
    env = clean_env(work / "model-cache")
    log = work / "block.log"
    lines = []
    for line in readme_block(clone):
        if setup_only and "sftdata run" in line:
            return {"clone": clone}
        lines.append(measure(in_venv(line), clone, env, log))
        if lines[-1]["rc"] != 0:
            raise SystemExit(f"{ref}: `{line}` failed, see {log}")
    runs = [x for x in lines if "sftdata run" in x["command"]]
    summary = json.loads((clone / "runs" / "quickstart" / "summary.json").read_text())
    shutil.rmtree(clone / "runs")
    warm = measure(in_venv("sftdata run recipes/quickstart.yaml"), clone, env, log)
    convert = measure(in_venv(f"python -c '{CONVERT}'"), clone, clean_env(work / "cache-2"), log)
    setup = [x for x in lines if "sftdata run" not in x["command"]]
    train = summary.get("train") or {}
    return {"lines": lines, "block_seconds": round(sum(x["seconds"] for x in lines), 1),
            "setup_seconds": round(sum(x["seconds"] for x in setup), 1),
            "run": runs[-1] if runs else None, "warm_run": warm, "convert": convert,
            "first_loss": train.get("first_loss"), "last_loss": train.get("train_loss"),
            "train_steps": train.get("steps"), "records": summary.get("records"),
            "phases": (summary.get("cost") or {}).get("phases"), "clone": clone}


def train_data(path: Path) -> Path:
    if REALWORLD.is_file():
        rows = json.loads(REALWORLD.read_text(encoding="utf-8"))[:TRAIN_RECORDS]
    else:
        rows = [json.loads(x) for x in (ROOT / "examples" / "text_to_sql.jsonl").read_text().splitlines()][:TRAIN_RECORDS]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run_train(clone: Path, data: Path, work: Path) -> dict:
    """`sftdata train` with its defaults (and --max-steps) in ``clone``'s venv."""
    out = work / "train-out"
    shutil.rmtree(out, ignore_errors=True)
    env = clean_env(work / "model-cache")
    # The one-time conversion (done already when the block ran) must not count here.
    measure(in_venv(f"python -c '{CONVERT}'"), clone, env, work / "train.log")
    result = measure(in_venv(f"sftdata train --data {data} -o {out} --max-steps {TRAIN_STEPS}"), clone, env,
                     work / "train.log")
    if result["rc"] != 0:
        raise SystemExit(f"sftdata train failed, see {work / 'train.log'}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_seconds" in r]
    result["trained_tokens"] = steps[-1]["trained_tokens"]
    result["step_seconds"] = round(sum(r["step_seconds"] for r in steps), 1)
    result["tokens_per_s"] = round(result["trained_tokens"] / result["step_seconds"], 1)
    result["losses"] = [r["loss"] for r in steps]
    return result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


def show(rows: list[tuple[str, list, list | None]], names: tuple[str, str | None]) -> None:
    """label | median (all runs) per ref | ratio."""
    ref, base = names
    head = f"{'':34}{ref:>26}" + (f"{base:>26}{'ratio':>8}" if base else "")
    print(head)
    for label, mine, theirs in rows:
        cell = f"{median(mine):,.1f} ({', '.join(f'{v:,.0f}' for v in mine)})"
        line = f"{label:34}{cell:>26}"
        if base and theirs:
            other = f"{median(theirs):,.1f} ({', '.join(f'{v:,.0f}' for v in theirs)})"
            line += f"{other:>26}{median(mine) / median(theirs):>7.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (medians are printed)")
    parser.add_argument("--part", choices=["all", "block", "train"], default="all")
    parser.add_argument("--ref", default="HEAD", help="git ref to measure (committed files only)")
    parser.add_argument("--baseline", help="a git ref to measure side by side (e.g. the code before a change)")
    parser.add_argument("--baseline-runs", type=int, help="rounds of the baseline (default --runs)")
    parser.add_argument("--checkout", type=Path,
                        help="--part train only: use this checkout and its .venv instead of a fresh clone of --ref")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs, clones)")
    args = parser.parse_args()
    # Pinned now, so commits made while it runs do not change what later rounds measure.
    args.ref, args.baseline = (subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", r], check=True,
                                              capture_output=True, text=True).stdout.strip() if r else None
                               for r in (args.ref, args.baseline))
    refs = [args.ref] + ([args.baseline] if args.baseline else [])
    top = Path(tempfile.mkdtemp(prefix="bench-firstrun-"))
    print(f"{os.cpu_count()} cores, load average {load():.1f}; work folder {top}")
    blocks: dict[str, list[dict]] = {r: [] for r in refs}
    trains: dict[str, list[dict]] = {r: [] for r in refs}
    clones: dict[str, Path] = {args.ref: args.checkout.resolve()} if args.checkout else {}
    rounds = {args.ref: args.runs, args.baseline: args.baseline_runs or args.runs}
    for i in range(args.runs):
        for ref in [r for r in refs if i < rounds[r]]:
            work = top / f"{re.sub(r'[^A-Za-z0-9]+', '_', ref)}-{i}"
            work.mkdir()
            if args.part in ("all", "block") or ref not in clones:
                result = run_block(ref, work, setup_only=args.part == "train")
                clones[ref] = result.pop("clone")
                if args.part in ("all", "block"):
                    blocks[ref].append(result)
                    r = result["run"]
                    print(f"[{ref} round {i + 1}] block {result['block_seconds']} s (setup {result['setup_seconds']} s,"
                          f" sftdata run {r['seconds']} s, peak {r['peak_rss_mb']:,.0f} MiB, load {r['load']});"
                          f" warm run {result['warm_run']['seconds']} s; loss {result['first_loss']} ->"
                          f" {result['last_loss']}", flush=True)
            if args.part in ("all", "train"):
                data = train_data(work / "alpaca24.jsonl")
                t = run_train(clones[ref], data, work)
                trains[ref].append(t)
                print(f"[{ref} round {i + 1}] train {t['tokens_per_s']} trained tokens/s, peak {t['peak_rss_mb']:,.0f}"
                      f" MiB, {t['seconds']} s, load {t['load']}, losses {t['losses']}", flush=True)

    names = (args.ref, args.baseline)
    pick = (lambda ref: lambda key: [b[key] for b in blocks[ref]])
    if blocks[args.ref]:
        print("\nREADME first block (seconds; peak RSS in MiB)")
        rows = []
        for j, line in enumerate(blocks[args.ref][0]["lines"]):
            label = line["command"].split("; ", 1)[1][:34]
            mine = [b["lines"][j]["seconds"] for b in blocks[args.ref]]
            theirs = [b["lines"][j]["seconds"] for b in blocks[args.baseline]] if args.baseline and \
                len(blocks[args.baseline][0]["lines"]) > j else None
            rows.append((label, mine, theirs))
        base = pick(args.baseline) if args.baseline else (lambda key: None)
        rows += [("whole block (target < 300 s)", pick(args.ref)("block_seconds"), base("block_seconds")),
                 ("  of it one-off setup: venv+pip", pick(args.ref)("setup_seconds"), base("setup_seconds")),
                 ("  model conversion (in the run)", [b["convert"]["seconds"] for b in blocks[args.ref]],
                  [b["convert"]["seconds"] for b in blocks[args.baseline]] if args.baseline else None),
                 ("sftdata run peak RSS (< 2048)", [b["run"]["peak_rss_mb"] for b in blocks[args.ref]],
                  [b["run"]["peak_rss_mb"] for b in blocks[args.baseline]] if args.baseline else None),
                 ("sftdata run tree RSS, polled", [b["run"]["peak_tree_mb"] for b in blocks[args.ref]],
                  [b["run"]["peak_tree_mb"] for b in blocks[args.baseline]] if args.baseline else None),
                 ("later sftdata run, warm (s)", [b["warm_run"]["seconds"] for b in blocks[args.ref]],
                  [b["warm_run"]["seconds"] for b in blocks[args.baseline]] if args.baseline else None)]
        show(rows, names)
        for ref in refs:
            print(f"{ref}: loads during `sftdata run`: {[b['run']['load'] for b in blocks[ref]]}; "
                  f"losses first -> last: {[(b['first_loss'], b['last_loss']) for b in blocks[ref]]}")
            if blocks[ref][-1]["phases"]:
                print(f"{ref}: last round's phases: " + ", ".join(
                    f"{p['name']} {p['seconds']} s/{p['peak_rss_mb']:,.0f} MiB" for p in blocks[ref][-1]["phases"]))
    if trains[args.ref]:
        print(f"\nsftdata train, defaults, {TRAIN_RECORDS} real-world records, --max-steps {TRAIN_STEPS}")
        tk = (lambda ref, key: [t[key] for t in trains[ref]] if ref else None)
        show([("trained tokens/s", tk(args.ref, "tokens_per_s"), tk(args.baseline, "tokens_per_s")),
              ("peak RSS, MiB (target < 1536)", tk(args.ref, "peak_rss_mb"), tk(args.baseline, "peak_rss_mb")),
              ("wall seconds", tk(args.ref, "seconds"), tk(args.baseline, "seconds"))], names)
        for ref in refs:
            print(f"{ref}: loads {[t['load'] for t in trains[ref]]}; trained tokens {trains[ref][0]['trained_tokens']:,}")
    if not args.keep:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

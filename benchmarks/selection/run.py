"""What does choosing the data with models buy after training? Measured, not asserted.

One pool (the real-world files in ../shared/data/realworld, written by other tools, plus
the bundled SmolLM2's own Self-Instruct output in ``self_instruct_smollm2.jsonl``) is
scored once with the library's steps - ``ifd`` (a local causal LM; its ``ifd_parts.loss``
is the log-perplexity),
``judge`` (a rubric file, ``rubric.j2``), ``semantic_dedup`` (all-MiniLM-L6-v2) - and
the same budget is selected five ways with ``select``:

    random       a seeded random subset (one per seed)
    ifd          Cherry LLM: drop IFD >= 1, keep the highest IFD
    judge        AlpaGasus: the highest judge scores
    diversity    k-center greedy on the embeddings (coverage only)
    combination  rank(ifd) + rank(judge), deita's diversity-aware walk

Each selection trains the same LoRA (same steps, rows, learning rate, seed) on the
scoring model, and is measured by the mean loss per answer token on an evaluation set
that no selection saw and that no pool generator wrote: ``sftdata/data/general_tasks.jsonl``
(short instruction/answer pairs written for this project). Every method runs with
``--seeds`` seeds (LoRA initialisation and data order; the random subset too).

    python benchmarks/selection/run.py                       # ~40 min on 2 shared CPU cores
    python benchmarks/selection/run.py --smallest --out /tmp/sel   # smoke run (the slow test)
    python benchmarks/selection/run.py --model /models/Qwen2.5-1.5B-Instruct --device cuda \\
        --pool 4000 --steps 300 --max-length 1024            # a GPU run with a bigger model
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import write_outputs  # noqa: E402

from sftdata.convert import read_canonical, write_records  # noqa: E402
from sftdata.records import records_from_frame  # noqa: E402
from sftdata.steps.registry import build_step  # noqa: E402
from sftdata.steps.scores import meta_numbers  # noqa: E402

REALWORLD = HERE.parents[1].parent / "shared" / "data" / "realworld"
# file -> share of the pool (the rest comes from the generated file)
POOL_FILES = {"alpaca_en_demo.json": 0.55, "alpaca_zh_demo.json": 0.12, "glaive_toolcall_en_demo.json": 0.08,
              "identity.json": 0.06, "kto_en_demo.json": 0.08, "v1_sft_demo.jsonl": 0.06}
METHODS = ("random", "ifd", "judge", "diversity", "combination")
SAMPLE_PROMPTS = ["What is the capital of Japan?", "Give me a synonym for \"quick\"."]


@dataclass
class Settings:
    pool: int = 240              # records in the pool (before exact dedup)
    budget: float = 0.25         # share of the pool each method keeps
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 12              # optimizer steps per run (the same LoRA budget for every method)
    batch_size: int = 2          # packed rows per step
    max_length: int = 160        # tokens per record (scoring and training) and per packed row
    learning_rate: float = 5e-4
    lora_r: int = 16
    eval_records: int = 64
    model: str | None = None     # local model folder; None = the bundled SmolLM2-135M-Instruct
    device: str = "auto"
    judge_url: str | None = None  # an OpenAI-compatible judge instead of the scoring model
    judge_model: str | None = None


SMALLEST = Settings(pool=40, seeds=(0,), steps=2, batch_size=1, max_length=96, eval_records=8)


def build_pool(s: Settings) -> pl.DataFrame:
    """The pool: a seeded sample of each real-world file plus the generated records."""
    rng = random.Random(0)
    generated = read_canonical(HERE / "self_instruct_smollm2.jsonl", source="self_instruct").frame
    parts = [generated.with_columns(pl.lit("self_instruct_smollm2").alias("source"))]
    room = s.pool - generated.height
    for name, share in POOL_FILES.items():
        frame = read_canonical(REALWORLD / name).frame
        picks = sorted(rng.sample(range(frame.height), min(frame.height, max(1, round(share * room)))))
        parts.append(frame[picks].with_columns(pl.lit(Path(name).stem).alias("source")))
    pool = pl.concat(parts)
    return build_step("exact_dedup", {})(pool).kept


def eval_records(s: Settings) -> list[dict]:
    path = resources.files("sftdata.data").joinpath("general_tasks.jsonl")
    frame = read_canonical(Path(str(path)), source="general").frame
    picks = random.Random(1).sample(range(frame.height), s.eval_records)
    return records_from_frame(frame[sorted(picks)])


def score_pool(pool: pl.DataFrame, s: Settings) -> tuple[pl.DataFrame, dict]:
    """Every score the methods need, with the library's own steps (cached: reruns are free)."""
    lm = {"model": s.model, "device": s.device, "max_length": s.max_length, "progress": True}
    judge = {"rubric_file": str(HERE / "rubric.j2"), "max_tokens": 6, "progress": True,
             "base_url": s.judge_url, "model": s.judge_model or (None if s.judge_url else s.model)}
    seconds, frame, lost = {}, pool, {}
    for name, params in (("ifd", lm), ("judge", judge),
                         ("semantic_dedup", {"threshold": 1.0, "device": s.device, "progress": True})):
        t0 = time.perf_counter()
        result = build_step(name, params)(frame)
        seconds[name] = round(time.perf_counter() - t0, 1)
        lost[name] = result.report.drops
        # Records a score step could not score stay in the pool without that score.
        frame = pl.concat([result.kept, result.rejected.drop("reason", "detail")])
        print(f"scored {name}: {seconds[name]} s, unscored {result.report.drops}", flush=True)
    return frame, {"seconds": seconds, "unscored": lost}


def select(pool: pl.DataFrame, method: str, budget: int, seed: int) -> pl.DataFrame:
    if method == "random":
        return pool[sorted(random.Random(seed).sample(range(pool.height), budget))]
    if method == "ifd":
        # Cherry LLM: IFD >= 1 means the instruction does not help; take the hardest of the rest.
        below_one = pl.Series(meta_numbers(pool, "ifd") < 1.0)
        return build_step("select", {"by": "ifd", "top": budget})(pool.filter(below_one)).kept
    if method == "judge":
        return build_step("select", {"by": "judge", "top": budget})(pool).kept
    if method == "diversity":
        return build_step("select", {"by": "judge", "top": budget, "diversity": "kcenter",
                                     "progress": False})(pool).kept
    return build_step("select", {"by": {"ifd": 1.0, "judge": 1.0}, "top": budget, "diversity": "deita",
                                 "similarity": 0.9, "progress": False})(pool).kept


def torch_threads() -> int:
    """All cores on an idle machine, one when others keep it busy (OpenMP threads that
    compete with other processes spin at every barrier: ~10x slower steps here)."""
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] > cores - 0.5 else cores


def run(s: Settings, out: Path, work: Path) -> dict:
    import torch

    from sftdata.trainer import TrainConfig, evaluate_loss, generate_samples, load_trained, train

    torch.set_num_threads(torch_threads())
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    pool = build_pool(s)
    held_out = eval_records(s)
    scored, scoring = score_pool(pool, s)
    budget = round(s.budget * scored.height)
    base_model, base_tok = load_trained(s.model)
    base = evaluate_loss(base_model, held_out, base_tok, max_length=s.max_length)
    base_answers = [r for _, r in generate_samples(base_model, base_tok, SAMPLE_PROMPTS, 32)]
    del base_model
    runs = []
    for method in METHODS:
        for seed in s.seeds:
            chosen = select(scored, method, budget, seed)
            data = work / f"{method}-{seed}.jsonl"
            write_records(chosen, data, "canonical")
            t0 = time.perf_counter()
            result = train(TrainConfig(
                data=str(data), model=s.model, output_dir=str(work / f"run-{method}-{seed}"),
                max_steps=s.steps, batch_size=s.batch_size, max_length=s.max_length,
                learning_rate=s.learning_rate, lora_r=s.lora_r, lora_alpha=2.0 * s.lora_r,
                seed=seed, warmup_ratio=0.1, progress=False, num_samples=0))
            model, tok = load_trained(result.output_dir)
            loss = evaluate_loss(model, held_out, tok, max_length=s.max_length)
            answers = ([r for _, r in generate_samples(model, tok, SAMPLE_PROMPTS, 32)]
                       if seed == s.seeds[0] else [])
            del model
            sources = chosen.group_by("source").len().sort("source")
            runs.append({"method": method, "seed": seed, "eval_loss": round(loss, 4),
                         "records": chosen.height, "trained_tokens": result.trained_tokens,
                         "train_seconds": round(time.perf_counter() - t0, 1), "answers": answers,
                         "sources": dict(zip(sources["source"].to_list(), sources["len"].to_list()))})
            print(f"{method} seed {seed}: eval loss {loss:.4f} ({runs[-1]['train_seconds']} s)", flush=True)
    results = {"settings": asdict(s), "pool": scored.height, "budget": budget, "base_loss": round(base, 4),
               "base_answers": base_answers, "sample_prompts": SAMPLE_PROMPTS, "scoring": scoring,
               "runs": runs, "seconds": round(time.perf_counter() - start, 1),
               "load_average": {"start": [round(x, 2) for x in load_before],
                                "end": [round(x, 2) for x in os.getloadavg()]},
               "torch_threads": torch.get_num_threads(),
               "pool_sources": dict(scored.group_by("source").len().sort("source").iter_rows())}
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_outputs(results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smallest", action="store_true", help="tiny smoke configuration (tests)")
    parser.add_argument("--model", help="local causal LM folder for scoring and training (default: bundled SmolLM2)")
    parser.add_argument("--device", help="auto, cpu, cuda ...")
    parser.add_argument("--pool", type=int, help="records in the pool")
    parser.add_argument("--budget", type=float, help="share of the pool each method keeps")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--steps", type=int, help="optimizer steps per training run")
    parser.add_argument("--batch-size", type=int, help="packed rows per step")
    parser.add_argument("--max-length", type=int, help="tokens per record and per packed row")
    parser.add_argument("--lr", dest="learning_rate", type=float, help="learning rate")
    parser.add_argument("--judge-url", help="OpenAI-compatible judge endpoint (default: the scoring model)")
    parser.add_argument("--judge-model", help="model name at the judge endpoint")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/.json and the plot go")
    parser.add_argument("--work", type=Path, help="scratch folder (default: OUT/work)")
    args = parser.parse_args(argv)
    s = SMALLEST if args.smallest else Settings()
    for name in ("model", "device", "pool", "budget", "steps", "batch_size", "max_length",
                 "learning_rate", "judge_url", "judge_model"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if args.seeds:
        s.seeds = tuple(int(x) for x in args.seeds.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(s, args.out, args.work or args.out / "work")
    print(f"done in {results['seconds']:.0f} s; wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()

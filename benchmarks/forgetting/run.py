"""How much forgetting does mixing general data back in prevent? Measured, not asserted.

Base model: the bundled SmolLM2-135M-Instruct. Domain data: a narrow, rigid task
(``domain.py``: a person's details out of a sentence, always answered as the same JSON
shape). General data: ``sftdata/data/general_tasks.jsonl``, split by category: the
``capitals``, ``vocabulary`` and ``knowledge`` categories are the general held-out set
(templates no run trains on), the other categories are what gets mixed in.

For each share of general data (0%, 10%, 25%, 50%) the script mixes the training set
with ``sftdata.steps.mix.mix_sources`` (same total, no upsampling), trains LoRA with the
same steps, seed and settings, and measures the mean loss per answer token on held-out
domain and held-out general data, before (the base model) and after. It writes
``results.md`` (table + a sample answer per run), ``results.json`` and ``forgetting.png``.

    python benchmarks/forgetting/run.py                # full run (~15-25 min on 2 CPU cores)
    python benchmarks/forgetting/run.py --smallest --out /tmp/forgetting   # ~2 min smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domain import domain_frames  # noqa: E402
from report import write_outputs  # noqa: E402

from sftdata.convert import read_canonical, write_records  # noqa: E402
from sftdata.records import records_from_frame  # noqa: E402
from sftdata.steps.mix import MixSource, mix_sources  # noqa: E402

HERE = Path(__file__).resolve().parent
HELD_OUT_CATEGORIES = ("capitals", "vocabulary", "knowledge")
SAMPLE_PROMPTS = ["What is the capital of Japan?", "What is the opposite of \"early\"?"]


@dataclass
class Settings:
    mixes: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)
    steps: int = 60
    batch_size: int = 1          # packed rows of `max_length` tokens per step (~3 records)
    max_length: int = 256
    learning_rate: float = 1e-3
    lora_r: int = 16
    records: int = 180           # records in each mixed training set (same for every run)
    domain_train: int = 600
    domain_eval: int = 48
    general_eval: int = 64
    seed: int = 0
    model: str | None = None     # local model folder; None = the bundled SmolLM2-135M-Instruct


SMALLEST = Settings(mixes=(0.0, 0.5), steps=3, batch_size=1, records=24, domain_train=60,
                    domain_eval=8, general_eval=8)


def general_split(settings: Settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(mix pool, held-out eval sample) from the shipped general tasks, split by category."""
    path = resources.files("sftdata.data").joinpath("general_tasks.jsonl")
    frame = read_canonical(Path(str(path)), source="general").frame
    category = frame["meta"].str.json_path_match("$.category")
    held = frame.filter(category.is_in(HELD_OUT_CATEGORIES))
    pool = frame.filter(~category.is_in(HELD_OUT_CATEGORIES))
    order = random.Random(settings.seed).sample(range(held.height), settings.general_eval)
    return pool, held[order]


def losses(model, tokenizer, sets: dict[str, list[dict]], max_length: int) -> dict[str, float]:
    from sftdata.trainer import evaluate_loss

    return {name: round(evaluate_loss(model, records, tokenizer, max_length=max_length), 4)
            for name, records in sets.items()}


def answers(model, tokenizer) -> list[str]:
    from sftdata.trainer import generate_samples

    return [reply for _, reply in generate_samples(model, tokenizer, SAMPLE_PROMPTS, 24)]


def torch_threads() -> int:
    """Threads for torch: all cores on an idle machine, one when others keep it busy.

    On a shared 2-core machine, 2 OpenMP threads competing with other processes spin
    at every barrier; measured here, a step took ~10x longer than with 1 thread.
    """
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] > cores - 0.5 else cores


def run(settings: Settings, out: Path, work: Path) -> dict:
    import torch

    from sftdata.local_model import load_causal_lm
    from sftdata.trainer import TrainConfig, load_trained, train

    torch.set_num_threads(torch_threads())
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    domain_train, domain_eval = domain_frames(settings.domain_train, settings.domain_eval, settings.seed)
    pool, general_eval = general_split(settings)
    sets = {"domain": records_from_frame(domain_eval), "general": records_from_frame(general_eval)}

    model, tokenizer = load_causal_lm(settings.model)
    base = losses(model, tokenizer, sets, settings.max_length)
    base_answers = answers(model, tokenizer)
    del model
    print(f"base: {base}", flush=True)

    runs = []
    for share in settings.mixes:
        mixed, report = mix_sources(
            [MixSource("domain", domain_train), MixSource("general", pool)],
            total=settings.records, ratios={"general": share}, seed=settings.seed,
            replacement="never",
        )
        data = work / f"mix-{round(share * 100)}.jsonl"
        write_records(mixed, data, "canonical")
        t0 = time.perf_counter()
        result = train(TrainConfig(
            data=str(data), model=settings.model, output_dir=str(work / f"run-{round(share * 100)}"),
            max_steps=settings.steps, batch_size=settings.batch_size,
            max_length=settings.max_length, learning_rate=settings.learning_rate,
            lora_r=settings.lora_r, lora_alpha=2.0 * settings.lora_r, seed=settings.seed,
            warmup_ratio=0.05, progress=False, num_samples=0,
        ))
        seconds = time.perf_counter() - t0
        model, tokenizer = load_trained(result.output_dir)
        after = losses(model, tokenizer, sets, settings.max_length)
        runs.append({
            "general_share": share, "after": after, "steps": result.steps,
            "trained_tokens": result.trained_tokens, "train_seconds": round(seconds, 1),
            "taken": {s.name: s.taken for s in report.sources}, "answers": answers(model, tokenizer),
        })
        del model
        print(f"{share:.0%} general: {after} ({seconds:.0f} s)", flush=True)
    results = {"settings": asdict(settings), "base": base, "base_answers": base_answers,
               "sample_prompts": SAMPLE_PROMPTS, "held_out_categories": list(HELD_OUT_CATEGORIES),
               "runs": runs, "seconds": round(time.perf_counter() - start, 1)}
    write_outputs(results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smallest", action="store_true", help="tiny smoke configuration (tests)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run")
    parser.add_argument("--mixes", help="comma-separated general shares, e.g. 0,0.1,0.25,0.5")
    parser.add_argument("--lr", dest="learning_rate", type=float, help="learning rate")
    parser.add_argument("--batch-size", type=int, help="packed rows per step")
    parser.add_argument("--max-length", type=int, help="tokens per packed row")
    parser.add_argument("--records", type=int, help="records in each mixed training set")
    parser.add_argument("--domain-train", type=int, help="domain records generated for training")
    parser.add_argument("--model", help="local model folder (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--seed", type=int, help="seed of data, mixing and training")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/.json and the plot go")
    parser.add_argument("--work", type=Path, help="scratch folder for data and adapters (default: OUT/work)")
    args = parser.parse_args(argv)
    settings = SMALLEST if args.smallest else Settings()
    for name in ("steps", "learning_rate", "batch_size", "max_length", "records", "domain_train",
                 "model", "seed"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    if args.mixes:
        settings.mixes = tuple(float(x) for x in args.mixes.split(","))
    results = run(settings, args.out, args.work or args.out / "work")
    print(f"done in {results['seconds']:.0f} s; wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()

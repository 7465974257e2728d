"""Trained tokens per second: sftdata's trainer vs TRL's SFTTrainer, side by side.

    /work/venv/bin/python benchmarks/trainer/bench_trainer.py [--records 32] [--eval-records 8]

Both sides fine-tune the bundled SmolLM2-135M-Instruct with LoRA r16 / alpha 32 on all
linear layers, fp32, lr 2e-4 linear with no warmup, max_length 1024, one epoch over the
same records, about 8 conversations per optimizer step. TRL runs with its defaults
otherwise (no packing, batches padded to their longest member, its default gradient
checkpointing); bf16 is switched off for TRL because this CPU has no bf16 units.
sftdata packs (best-fit decreasing, padding-free) into rows of 1200 tokens, one row per
step (~8 conversations of mean 150 tokens).

The data: single-turn chats whose total token lengths follow a lognormal (mean 150,
sigma 1.25, median ~70) at evenly spaced quantiles, so with 32 records the longest
reaches ~1000 tokens; the text is
cut from real instruction answers when the shared test data is present, else from a
word list. Each side runs in its own subprocess so its peak RSS is its own.

Reports per side: trained tokens (tokens that carry loss), wall time of the training
loop, trained tokens/s, peak RSS, mean training loss, held-out loss after training
(measured the same way for both adapters), and MFU = 4*N*T / time / measured fp32
matmul rate (N = parameters, T = non-padding tokens; LoRA needs no weight gradients
for the frozen weights, so forward 2NT + backward 2NT).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

REALWORLD = Path(__file__).resolve().parents[3] / "shared" / "data" / "realworld" / "alpaca_en_demo.json"
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
MAX_LENGTH, PACK_LENGTH, BATCH, LR = 1024, 1200, 8, 2e-4


def lognormal_lengths(n: int, mean: float = 150.0, sigma: float = 1.25, seed: int = 0) -> list[int]:
    """n lengths at evenly spaced quantiles of a lognormal with the given mean, shuffled."""
    mu = math.log(mean) - sigma**2 / 2
    lengths = [round(math.exp(mu + sigma * NormalDist().inv_cdf((i + 0.5) / n))) for i in range(n)]
    random.Random(seed).shuffle(lengths)
    return lengths


def n_tokens(tokenizer, messages: list[dict]) -> int:
    """Length of a conversation rendered with the chat template."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_records(tokenizer, n: int, seed: int) -> list[dict]:
    """Single-turn chats whose rendered length (chat template included) follows the lognormal."""
    if REALWORLD.is_file():
        text = "\n\n".join(r["output"] for r in json.loads(REALWORLD.read_text()))
    else:
        words = "the model reads data and writes clear answers about simple facts each day".split()
        rng = random.Random(1)
        text = " ".join(rng.choice(words) for _ in range(200_000))
    pool = tokenizer(text, add_special_tokens=False)["input_ids"]
    overhead = n_tokens(tokenizer, [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}])
    rng = random.Random(seed)
    records = []
    for total in lognormal_lengths(n, seed=seed):
        body = max(total - overhead, 12)
        p = max(6, body // 5)
        start = rng.randrange(len(pool) - body)
        prompt = tokenizer.decode(pool[start:start + p]).strip() or "Go on."
        answer = tokenizer.decode(pool[start + p:start + body]).strip() or "Yes."
        records.append({"messages": [{"role": "user", "content": prompt},
                                     {"role": "assistant", "content": answer}]})
    return records


def matmul_gflops(seconds: float = 3.0) -> float:
    """Measured fp32 matmul rate (GFLOP/s) with torch's threads, on 1024x1024 blocks."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - t0) / 1e9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_sftdata(work: Path, model_dir: str) -> dict:
    import torch

    from sftdata.trainer import TrainConfig, train

    cfg = TrainConfig(data=str(work / "train.jsonl"), model=model_dir, output_dir=str(work / "sftdata"),
                      method="lora", lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=0.0,
                      max_length=MAX_LENGTH, pack_length=PACK_LENGTH, batch_size=1, learning_rate=LR,
                      lr_scheduler="linear", warmup_ratio=0.0, epochs=1, num_samples=0, progress=False,
                      # as measured in README.md: no recomputation, the threads chosen here
                      gradient_checkpointing=False, threads=torch.get_num_threads())
    result = train(cfg)
    rows = [json.loads(x) for x in (work / "sftdata" / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(r["step_seconds"] for r in rows if "step_seconds" in r)
    return {"trained_tokens": result.trained_tokens, "seconds": seconds, "steps": result.steps,
            "mean_loss": sum(result.losses) / len(result.losses), "adapter": str(work / "sftdata")}


def run_trl(work: Path, model_dir: str) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from sftdata.local_model import load_causal_lm

    rows = [json.loads(x) for x in (work / "train.jsonl").read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    model, tokenizer = load_causal_lm(model_dir)
    args = SFTConfig(output_dir=str(work / "trl"), learning_rate=LR, num_train_epochs=1, bf16=False,
                     per_device_train_batch_size=BATCH, max_length=MAX_LENGTH, report_to="none",
                     save_strategy="no", logging_steps=1, seed=42, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA))
    cols = trainer.train_dataset.column_names
    if "labels" in cols:  # TRL folds the completion mask into labels (-100 = no loss)
        trained = sum(sum(1 for t in ex["labels"][1:] if t != -100) for ex in trainer.train_dataset)
    else:
        trained = sum(sum(ex["completion_mask"][1:]) for ex in trainer.train_dataset)

    class Clock(TrainerCallback):
        """Time only the optimizer steps (not dataset preparation or saving)."""
        total, start = 0.0, 0.0

        def on_step_begin(self, *a, **k):
            Clock.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            Clock.total += time.perf_counter() - Clock.start

    trainer.add_callback(Clock)
    out = trainer.train()
    trainer.save_model(str(work / "trl"))
    return {"trained_tokens": trained, "seconds": Clock.total, "steps": out.global_step,
            "mean_loss": out.training_loss, "adapter": str(work / "trl"), "settings": {
                "gradient_checkpointing": args.gradient_checkpointing, "packing": args.packing,
                "padding_free": args.padding_free, "completion_only_loss": args.completion_only_loss}}


def child(side: str, work: Path, model_dir: str, threads: int) -> None:
    """One side in its own process; prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    # The matmul rate is measured in the same process just before training, so MFU is
    # judged against what the machine could do at that moment (other jobs share it).
    load_before, gflops = os.getloadavg()[0], matmul_gflops()
    result = run_sftdata(work, model_dir) if side == "sftdata" else run_trl(work, model_dir)
    from sftdata.trainer import evaluate_loss

    eval_records = [json.loads(x) for x in (work / "eval.jsonl").read_text().splitlines()]
    result["eval_loss"] = evaluate_loss(result["adapter"], eval_records, max_length=MAX_LENGTH)
    result["peak_rss_mb"] = peak_rss_mb()
    result["gflops"], result["load"] = gflops, f"{load_before:.1f}->{os.getloadavg()[0]:.1f}"
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=32, help="training conversations")
    parser.add_argument("--eval-records", type=int, default=8, help="held-out conversations")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both sides (default: all cores, or 1 when other "
                             "processes already load the machine: spinning OpenMP threads then "
                             "make every step several times slower)")
    parser.add_argument("--side", choices=["sftdata", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args.side, Path(args.work), args.model, args.threads)
    import torch

    cores = os.cpu_count() or 1
    threads = args.threads or (1 if os.getloadavg()[0] > cores - 0.5 else cores)
    torch.set_num_threads(threads)

    from sftdata.local_model import bundled_model_dir, load_tokenizer

    model_dir = str(bundled_model_dir())
    tokenizer = load_tokenizer(model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    train_rows = make_records(tokenizer, args.records, seed=0)
    eval_rows = make_records(tokenizer, args.eval_records, seed=1)
    for name, rows in (("train.jsonl", train_rows), ("eval.jsonl", eval_rows)):
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = [n_tokens(tokenizer, r["messages"]) for r in train_rows]
    print(f"data: {len(lengths)} train chats, tokens mean {sum(lengths) / len(lengths):.0f}, "
          f"median {sorted(lengths)[len(lengths) // 2]}, max {max(lengths)}; {args.eval_records} held out")
    print(f"torch threads: {threads} of {cores} cores (load average {os.getloadavg()[0]:.1f})")
    n_params = 134_515_008
    results = {}
    for side in ("trl", "sftdata"):
        proc = subprocess.run([sys.executable, __file__, "--side", side, "--work", str(work),
                               "--model", model_dir, "--threads", str(threads)],
                              capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
        results[side] = json.loads(line[7:])
    tokens = sum(lengths)
    print(f"\n{'':24}{'TRL SFTTrainer':>16}{'sftdata':>16}")
    rows = [("optimizer steps", "steps", "{:.0f}"), ("trained tokens", "trained_tokens", "{:,.0f}"),
            ("train seconds", "seconds", "{:.1f}"), ("trained tokens/s", "tps", "{:.1f}"),
            ("fp32 matmul GFLOP/s", "gflops", "{:.1f}"), ("MFU", "mfu", "{:.1%}"),
            ("load average", "load", "{}"), ("peak RSS (MB)", "peak_rss_mb", "{:,.0f}"),
            ("mean train loss", "mean_loss", "{:.4f}"), ("held-out loss after", "eval_loss", "{:.4f}")]
    for r in results.values():
        r["tps"] = r["trained_tokens"] / r["seconds"]
        r["mfu"] = 4 * n_params * tokens / r["seconds"] / (r["gflops"] * 1e9)
    for label, key, fmt in rows:
        print(f"{label:24}{fmt.format(results['trl'][key]):>16}{fmt.format(results['sftdata'][key]):>16}")
    ratio = results["sftdata"]["tps"] / results["trl"]["tps"]
    print(f"\nratio sftdata / TRL (trained tokens/s): {ratio:.2f}x  (target >= 2x)")
    print(f"TRL settings in effect: {results['trl']['settings']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""sftdata's trainer vs TRL's SFTTrainer at its best settings, on one GPU.

    python benchmarks/trainer/bench_gpu.py [--sizes 0.5b,1.5b] [--methods full] [--records 1200]
    python benchmarks/trainer/bench_gpu.py --dry-run      # CPU, tiny model: checks that both sides start

Same model on both sides: Qwen2.5-0.5B- and 1.5B-sized (their configs: 24 layers x 896 and
28 x 1536, vocabulary 151,936, tied embeddings) built from config with random weights
(nothing can be downloaded), saved in bf16 with the bundled SmolLM2 tokenizer (ChatML;
its ids are a subset of the vocabulary). Same data: single-turn chats whose lengths follow
a lognormal (mean 600 tokens, capped at --max-length), one epoch. Same effective batch:
8 packed rows of --max-length tokens per optimizer step. Same optimisation: AdamW lr 2e-5
(full) / 2e-4 (LoRA r16, all linear layers), linear decay, no warmup, bf16 autocast over
fp32 master weights, no gradient checkpointing (--gradient-checkpointing to turn it on
for both when memory does not allow).

TRL's best settings: packing=True (best-fit decreasing, padding-free: position_ids, no
padding), Liger kernels (use_liger_kernel) when liger-kernel is installed, flash attention
when flash-attn is installed (else sdpa), bf16, completion-only loss on prompt/completion
data. sftdata: its defaults on a GPU (dtype auto, attention auto, cross_entropy auto).

Reports per side, each run in its own process: trained tokens/s over the optimizer steps
(loss-carrying tokens / summed step seconds, CUDA-synchronised), MFU = (6 N T for full, 4 N T
for LoRA; N parameters, T tokens fed, attention FLOPs not counted) / seconds / the bf16
matmul rate measured on this GPU just before, peak GPU memory (max_memory_allocated), the
final training loss (mean of the last 5 steps) and the held-out loss of the trained model
(sftdata's evaluator on both).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

SIZES = {  # Qwen2.5's own configs (hidden, intermediate, layers, heads, kv heads)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
}
VOCAB = 151_936
ROWS = 8  # packed rows per optimizer step, both sides
LR = {"full": 2e-5, "lora": 2e-4}
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0)
installed = lambda name: importlib.util.find_spec(name) is not None  # noqa: E731


def lognormal_lengths(n: int, mean: float, cap: int, sigma: float = 1.0, seed: int = 0) -> list[int]:
    """n lengths at evenly spaced quantiles of a lognormal, capped, shuffled."""
    mu = math.log(mean) - sigma**2 / 2
    out = [min(cap, round(math.exp(mu + sigma * NormalDist().inv_cdf((i + 0.5) / n)))) for i in range(n)]
    random.Random(seed).shuffle(out)
    return out


def make_records(tokenizer, n: int, mean: int, cap: int, seed: int) -> list[dict]:
    """Single-turn chats of about the sampled token lengths (template included); text from a
    word list, so that it is the same on any machine."""
    rng = random.Random(seed)
    words = ("the model reads data and writes clear answers about simple facts each day while "
             "a careful reader checks every line of the report before the meeting").split()
    records = []
    for total in lognormal_lengths(n, mean, cap - 16, seed=seed):
        body = max(total - 12, 8)  # ~12 tokens of template around the two messages
        text = " ".join(rng.choice(words) for _ in range(body))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:body]
        split = max(4, len(ids) // 4)
        records.append({"messages": [{"role": "user", "content": tokenizer.decode(ids[:split]).strip()},
                                     {"role": "assistant", "content": tokenizer.decode(ids[split:]).strip()}]})
    return records


def build_model(size: str, folder: Path, tokenizer, dtype) -> int:
    """A Qwen2 model of ``size`` with random weights, saved in ``dtype``; returns its parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, tie_word_embeddings=True, rope_theta=1_000_000.0,
                         max_position_embeddings=32768, rms_norm_eps=1e-6, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SIZES[size])
    model = Qwen2ForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def matmul_rate(device: str, seconds: float = 2.0) -> float:
    """Measured matmul FLOP/s: bf16 8192^2 on a GPU, fp32 1024^2 on a CPU."""
    import torch

    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    sync()
    return 2 * n**3 * count / (time.perf_counter() - t0)


def run_sftdata(work: Path, args: argparse.Namespace) -> dict:
    from sftdata.trainer import TrainConfig, train

    out = work / "sftdata"
    cfg = TrainConfig(data=str(work / "train.jsonl"), model=str(work / "model"), output_dir=str(out),
                      method=args.method, lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], max_length=args.max_length,
                      pack_length=args.max_length, batch_size=ROWS, learning_rate=LR[args.method],
                      lr_scheduler="linear", warmup_ratio=0.0, epochs=1, num_samples=0, progress=False,
                      gradient_checkpointing=args.gradient_checkpointing, seed=42,
                      **({"dtype": "float32", "threads": 2} if args.device == "cpu" else {}))
    result = train(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_seconds" in r]
    chosen = json.loads((out / "summary.json").read_text())
    import yaml

    settings = yaml.safe_load((out / "train_config.yaml").read_text())
    return {"trained_tokens": result.trained_tokens, "seconds": sum(r["step_seconds"] for r in steps),
            "steps": result.steps, "final_loss": sum(r["loss"] for r in steps[-5:]) / len(steps[-5:]),
            "model": str(out), "summary": chosen.get("trained_tokens_per_s"),
            "settings": {k: settings[k] for k in ("attn_implementation", "cross_entropy", "dtype", "packing",
                                                  "gradient_checkpointing")}}


def run_trl(work: Path, args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(x) for x in (work / "train.jsonl").read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    on_gpu = args.device == "cuda"
    attn = ("flash_attention_2" if installed("flash_attn") else "sdpa") if on_gpu else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.float32, attn_implementation=attn)
    tokenizer = AutoTokenizer.from_pretrained(work / "model")
    liger = on_gpu and installed("liger_kernel")
    sft = SFTConfig(output_dir=str(work / "trl"), learning_rate=LR[args.method], num_train_epochs=1,
                    lr_scheduler_type="linear", warmup_steps=0, bf16=on_gpu, tf32=on_gpu or None,
                    per_device_train_batch_size=ROWS, max_length=args.max_length, packing=True,
                    padding_free=True, use_liger_kernel=liger, gradient_checkpointing=args.gradient_checkpointing,
                    report_to="none", save_strategy="no", logging_steps=1, seed=42, disable_tqdm=True,
                    use_cpu=not on_gpu, dataloader_num_workers=2 if on_gpu else 0)
    peft_config = None
    if args.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", target_modules="all-linear", **LORA)
    trainer = SFTTrainer(model=model, args=sft, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config)
    dataset = trainer.train_dataset
    if "completion_mask" in dataset.column_names:
        trained = sum(sum(m[1:]) for m in dataset["completion_mask"])
    else:
        trained = sum(sum(1 for t in ex[1:] if t != -100) for ex in dataset["labels"])
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    losses: list[float] = []

    class Clock(TrainerCallback):
        """Seconds of the optimizer steps only (not dataset preparation or saving)."""
        total, start = 0.0, 0.0

        def on_step_begin(self, *a, **k):
            sync()
            Clock.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync()
            Clock.total += time.perf_counter() - Clock.start

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer.add_callback(Clock)
    out = trainer.train()
    trainer.save_model(str(work / "trl"))
    tokenizer.save_pretrained(str(work / "trl"))
    return {"trained_tokens": trained, "seconds": Clock.total, "steps": out.global_step,
            "final_loss": sum(losses[-5:]) / max(1, len(losses[-5:])), "model": str(work / "trl"),
            "settings": {"attn_implementation": attn, "packing": sft.packing, "padding_free": sft.padding_free,
                         "use_liger_kernel": liger, "bf16": sft.bf16,
                         "gradient_checkpointing": sft.gradient_checkpointing}}


def held_out_loss(work: Path, model_dir: str, args: argparse.Namespace) -> float:
    """The trained model's loss on the held-out chats (sftdata's evaluator, on the same device)."""
    import torch

    from sftdata.trainer import evaluate_loss
    from sftdata.trainer.modeling import load_trained

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model, tokenizer = load_trained(model_dir, dtype=dtype)
    held = [json.loads(x) for x in (work / "eval.jsonl").read_text().splitlines()]
    with torch.autocast(args.device, dtype=dtype, enabled=args.device == "cuda"):
        return evaluate_loss(model.to(args.device), held, tokenizer=tokenizer, max_length=args.max_length)


def child(side: str, work: Path, args: argparse.Namespace) -> None:
    """One side in its own process; prints one JSON line."""
    import torch

    rate = matmul_rate(args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = run_sftdata(work, args) if side == "sftdata" else run_trl(work, args)
    result["peak_memory_gib"] = (torch.cuda.max_memory_allocated() / 2**30) if args.device == "cuda" else None
    if args.device == "cuda":
        torch.cuda.empty_cache()
    result["eval_loss"] = None if args.no_eval else held_out_loss(work, result["model"], args)
    result["matmul_flops"] = rate
    print("RESULT " + json.dumps(result), flush=True)


def compare(size: str, method: str, args: argparse.Namespace, tokenizer) -> dict:
    """Both sides on one model size and method; returns their results."""
    import torch

    work = Path(tempfile.mkdtemp(prefix=f"bench-gpu-{size}-{method}-"))
    n_params = build_model(size, work / "model", tokenizer, torch.bfloat16 if args.device == "cuda" else torch.float32)
    for name, n, seed in (("train.jsonl", args.records, 0), ("eval.jsonl", args.eval_records, 1)):
        rows = make_records(tokenizer, n, args.mean_length, args.max_length, seed)
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        if name == "train.jsonl":  # every token of one epoch is fed once (packed, no padding)
            fed = sum(len(tokenizer(tokenizer.apply_chat_template(r["messages"], tokenize=False),
                                    add_special_tokens=False)["input_ids"]) for r in rows)
    results = {}
    for side in ("trl", "sftdata"):
        cmd = [sys.executable, __file__, "--side", side, "--work", str(work), "--method", method,
               "--max-length", str(args.max_length), "--device", args.device]
        cmd += ["--gradient-checkpointing"] * args.gradient_checkpointing + ["--no-eval"] * args.no_eval
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(f"{side} failed on {size} {method}:\n{proc.stderr[-4000:]}", file=sys.stderr)
            results[side] = None
            continue
        r = json.loads(line[7:])
        r["tps"] = r["trained_tokens"] / r["seconds"]
        flops_per_token = (6 if method == "full" else 4) * n_params
        r["fed_tokens"] = fed
        r["mfu"] = flops_per_token * fed / r["seconds"] / r["matmul_flops"]
        results[side] = r
    shutil.rmtree(work, ignore_errors=True)
    return {"size": size, "method": method, "params": n_params, **results}


def table(run: dict) -> str:
    rows = [("optimizer steps", "steps", "{:.0f}"), ("trained tokens", "trained_tokens", "{:,.0f}"),
            ("train seconds", "seconds", "{:.1f}"), ("trained tokens/s", "tps", "{:,.0f}"),
            ("MFU", "mfu", "{:.1%}"), ("peak GPU memory (GiB)", "peak_memory_gib", "{:.1f}"),
            ("final train loss", "final_loss", "{:.4f}"), ("held-out loss", "eval_loss", "{:.4f}")]
    trl, ours = run.get("trl"), run.get("sftdata")
    fmt = lambda f, r, k: "failed" if r is None else "-" if r.get(k) is None else f.format(r[k])  # noqa: E731
    lines = [f"\n{run['size']} ({run['params'] / 1e9:.2f}B parameters), {run['method']}",
             f"{'':24}{'TRL SFTTrainer':>16}{'sftdata':>16}"]
    lines += [f"{label:24}{fmt(f, trl, k):>16}{fmt(f, ours, k):>16}" for label, k, f in rows]
    if trl and ours:
        lines.append(f"ratio sftdata / TRL (trained tokens/s): {ours['tps'] / trl['tps']:.2f}x; "
                     f"peak memory {ours['peak_memory_gib'] / trl['peak_memory_gib']:.2f}x"
                     if ours["peak_memory_gib"] else f"ratio sftdata / TRL: {ours['tps'] / trl['tps']:.2f}x")
        lines.append(f"settings: TRL {trl['settings']}; sftdata {ours['settings']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5b,1.5b", help="comma-separated: 0.5b, 1.5b (tiny for a check)")
    parser.add_argument("--methods", default="full", help="comma-separated: full, lora")
    parser.add_argument("--records", type=int, default=1200, help="training conversations (one epoch)")
    parser.add_argument("--eval-records", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=2048, help="longest chat and packed row length")
    parser.add_argument("--mean-length", type=int, default=600, help="mean chat length in tokens")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (both sides)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out loss")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, tiny model, a few records: checks that both sides start and report")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["sftdata", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args.side, Path(args.work), args)
    import torch

    if args.dry_run:
        args.device, args.sizes, args.records, args.eval_records = "cpu", "tiny", 16, 4
        args.max_length, args.mean_length = 256, 100
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cpu" and not args.dry_run:
        sys.exit("no CUDA GPU here: this benchmark is for a GPU (use --dry-run to check that it starts)")

    from sftdata.local_model import load_tokenizer

    tokenizer = load_tokenizer()
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}; flash-attn {'yes' if installed('flash_attn') else 'no'}, "
              f"liger-kernel {'yes' if installed('liger_kernel') else 'no'}")
    runs = []
    for size in args.sizes.split(","):
        for method in args.methods.split(","):
            run = compare(size, method, args, tokenizer)
            print(table(run), flush=True)
            runs.append(run)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    if any(r.get("trl") is None or r.get("sftdata") is None for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Commands: ``train`` (LoRA / full / freeze SFT) and ``merge`` (LoRA adapter -> model).

torch and transformers are imported inside the commands, so ``sftdata --help`` and the
data commands never load them.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
import yaml

from sftdata.cli.app import app
from sftdata.cli.common import JSON, QUIET, check_paths, console, print_cost, print_json, showing_tables, summary_mode
from sftdata.errors import UserError
from sftdata.ownership import folder_is_ours, mark_folder
from sftdata.paths import Target


def _parse_sets(items: List[str]) -> dict:
    """``--set key=value`` pairs; values are parsed as YAML (numbers, lists, booleans)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else None
    return out


class Method(str, Enum):
    lora = "lora"
    qlora = "qlora"
    full = "full"
    freeze = "freeze"


class TrainOn(str, Enum):
    assistant = "assistant"
    last = "last"
    all = "all"
    weight = "weight"


# What ``train --json`` prints of a run (its losses are in metrics.jsonl).
_RESULT_FIELDS = ("output_dir", "steps", "trained_tokens", "trained_tokens_per_s", "seconds", "train_loss",
                  "initial_eval_loss", "eval_loss", "best_step", "best_eval_loss", "stopped_early",
                  "dropped", "warnings", "cost")


@app.command()
def train(
    data_arg: Optional[Path] = typer.Argument(None, metavar="DATA", help="Training data (any format sftdata reads)."),
    data: Optional[Path] = typer.Option(None, "--data", hidden=True, help="Deprecated: give DATA as the argument."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="Held-out data file for eval loss."),
    model: Optional[str] = typer.Option(None, "--model", help="Local model folder (default: bundled SmolLM2-135M-Instruct)."),
    method: Optional[Method] = typer.Option(None, "--method", help="Fine-tuning method (default lora)."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output", help="Output folder."),
    output_dir_old: Optional[Path] = typer.Option(None, "--output-dir", hidden=True, help="Deprecated: -o/--output."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML TrainConfig; flags override its values."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the data."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sequences (or packed rows) per micro-batch."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Longest tokenised conversation."),
    train_on: Optional[TrainOn] = typer.Option(None, "--train-on", help="Which turns are trained."),
    packing: Optional[bool] = typer.Option(None, "--packing/--no-packing", help="Padding-free packing (default on)."),
    eval_split: Optional[float] = typer.Option(None, "--eval-split", help="Fraction held out when no --eval."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Eval loss every N steps."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the output folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Starting afresh: delete earlier checkpoints instead of keeping them."),
    chat_template: Optional[str] = typer.Option(None, "--chat-template", help="Chat template file, or chatml / chatml-tools."),
    force: bool = typer.Option(False, "--force", help="Train even when the mask check finds turns that would train nothing."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    sample: List[str] = typer.Option([], "--sample", help="A prompt to generate from after training (repeatable)."),
    set_: List[str] = typer.Option([], "--set", help="Any other TrainConfig field, e.g. --set lora_r=8 (repeatable)."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Fine-tune a causal LM on chat records (LoRA, full or freeze); resumable."""
    from sftdata.trainer.config import build_config, load_config

    summary_mode(quiet, as_json)

    if data is not None:
        console.print("[yellow]note: --data is deprecated; give the data file as the argument: "
                      "sftdata train DATA[/yellow]")
    if output_dir_old is not None:
        console.print("[yellow]note: --output-dir is deprecated; use -o/--output[/yellow]")
    if data_arg is not None and data is not None and data_arg != data:
        raise UserError("give the training data once: as DATA (or the deprecated --data)")
    data, output_dir = data_arg or data, output_dir or output_dir_old
    method = method.value if method else None
    train_on = train_on.value if train_on else None
    flags = {
        "data": str(data) if data else None, "eval_data": str(eval_data) if eval_data else None,
        "model": model, "method": method, "output_dir": str(output_dir) if output_dir else None,
        "epochs": epochs, "max_steps": max_steps, "learning_rate": lr, "batch_size": batch_size,
        "grad_accum": grad_accum, "max_length": max_length, "train_on": train_on, "packing": packing,
        "eval_split": eval_split, "eval_every": eval_every, "save_every": save_every,
        "resume": resume or None, "overwrite": overwrite or None, "chat_template": chat_template,
        "force": force or None, "seed": seed, "sample_prompts": list(sample) or None,
        "progress": False if not showing_tables() else None,
        **_parse_sets(set_),
    }
    if config:
        cfg = load_config(config, flags)
    else:
        if not data or not output_dir:
            raise UserError("give DATA and -o/--output (or --config FILE)")
        cfg = build_config({k: v for k, v in flags.items() if v is not None})
    # The trainer writes into (and resumes from) its folder: it must be a folder we can
    # write. A new or empty one is marked as sftdata's; writing into someone else's is said.
    if cfg.model is not None:
        from sftdata.local_model import model_folder

        model_folder(cfg.model)  # before torch loads: a wrong folder is a one-line error at once
    out = Path(cfg.output_dir)
    check_paths([Target("-o", out, "folder", replaces=False)], inputs=[p for p in (cfg.data, cfg.eval_data) if p])
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        mark_folder(out)
    elif not folder_is_ours(out):
        console.print(f"[yellow]note: writing into {out}, a folder sftdata did not make; files there "
                      "with the trainer's names are replaced[/yellow]")
    from sftdata.trainer.checkpoint import list_checkpoints

    earlier = list_checkpoints(cfg.output_dir) if not cfg.resume else []
    if earlier:
        what = "deleting them (--overwrite)" if cfg.overwrite else \
            f"they are kept, moved to {Path(cfg.output_dir) / 'earlier-<time>'} (--overwrite deletes them)"
        console.print(f"note: {cfg.output_dir} has {len(earlier)} checkpoint(s) of an earlier run, up to "
                      f"{earlier[-1].name}; starting afresh: {what}. --resume continues that run instead.")

    from sftdata.trainer.loop import train as run_training

    result = run_training(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the first process reports
        return
    if as_json:
        print_json({"title": "train", **{k: getattr(result, k) for k in _RESULT_FIELDS},
                    "samples": [{"prompt": p, "reply": r} for p, r in result.samples]})
        return
    if quiet:
        return
    lines = [
        f"steps: {result.steps}   trained tokens: {result.trained_tokens:,}   time: {result.seconds:.0f} s"
        + (f"   ({result.trained_tokens_per_s:,.1f} trained tokens/s)" if result.trained_tokens_per_s else ""),
        f"final train loss: {result.train_loss:.4f}" if result.train_loss is not None else "no steps run",
    ]
    if result.eval_loss is not None:
        before = f" (before training: {result.initial_eval_loss:.4f})" if result.initial_eval_loss is not None else ""
        lines.append(f"eval loss: {result.eval_loss:.4f}{before}")
    if result.dropped:
        lines.append("dropped records: " + ", ".join(f"{k}={v}" for k, v in result.dropped.items())
                     + f" (in {Path(cfg.output_dir) / 'rejects.jsonl'})")
    if result.warnings:
        lines.append("turns with mask warnings: " + ", ".join(f"{k}={v}" for k, v in result.warnings.items())
                     + " (see `sftdata masks`)")
    lines.append(f"output: {result.output_dir} (metrics.jsonl, {'adapter' if cfg.method == 'lora' else 'model'})")
    for line in lines:
        console.print(line)
    for prompt, reply in result.samples:
        console.print(f"[bold]> {prompt}[/bold]\n{reply}\n")
    if result.cost:
        print_cost(result.cost, "what the run cost")


@app.command()
def merge(
    adapter_dir: Path = typer.Argument(..., help="Folder with a LoRA adapter (a `sftdata train` output)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the standalone merged model."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model folder (default: the one recorded in the adapter)."),
    dtype: str = typer.Option("auto", "--dtype", help="dtype of the saved model: auto (the base model's), float32, bfloat16, float16."),
    device: str = typer.Option("auto", "--device", help="Where the merge runs: auto (a GPU when there is one), cpu, cuda."),
) -> None:
    """Merge a LoRA adapter into its base model and save a standalone model."""
    from sftdata.trainer.modeling import merge_adapter

    check_paths([Target("-o", output, "folder")], inputs=[adapter_dir] + ([base] if base else []))
    out = merge_adapter(adapter_dir, output, base=base)
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
    out = merge_adapter(adapter_dir, output, base=base, dtype=dtype, device=device)
    console.print(f"merged model: {out}")

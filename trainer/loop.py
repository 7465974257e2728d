"""The training loop: ``train(config) -> TrainResult``, readable top to bottom.

accelerate owns devices, mixed precision and process groups, so the same function runs
on one CPU, one GPU, or under ``accelerate launch`` / ``torchrun`` (each process takes
every world-size-th micro-batch). Everything else is plain torch.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sftdata.errors import UserError
from sftdata.io import JsonlAppender, atomic_dir, atomic_path, read_complete_lines
from sftdata.local_model import cache_dir, load_tokenizer
from sftdata.machine import CostMeter, release_freed_memory
from sftdata.rejects import make_reject, write_rejects
from .checkpoint import (gather_rng_states, list_checkpoints, load_checkpoint, save_checkpoint,
                         set_aside_checkpoints, trim_metrics)
from .config import TrainConfig, build_config
from .data import Example, MaskOptions, prepare_tokenizer
from .evaluate import examples_loss, generate_samples, load_records, prompt_messages
from .maskcheck import MaskReport
from .loss import choose as choose_loss
from .modeling import loss_sum, prepare_model, save_model, trainable_state, load_trainable_state
from .defaults import for_machine
from .neftune import add_neftune
from .optim import make_optimizer
from .packing import collate, epoch_batches, flattens_rows, forward_parts
from .progress import StepBar
from .precision import enable_tf32, installed_flash_attention, machine_precision, pick_attention
from .reporting import Reporter, check_available
from .stopping import BestTracker
from .tokencache import cached_tokenise, default_workers
from .vocab import add_special_tokens

# Changing any of these between a run and its resume would change the loss curve.
RESUME_KEYS = ("data", "eval_data", "eval_split", "model", "method", "seed", "max_length",
               "train_on", "packing", "pack_length", "batch_size", "grad_accum", "lora_r",
               "lora_alpha", "lora_target", "freeze_trainable_layers", "chat_template",
               "chat_template_kwargs", "train_roles", "train_on_eot", "split_turns", "lora_dora",
               "lora_rslora", "lora_init", "modules_to_save", "special_tokens", "dtype", "trainable_dtype")


@dataclass
class TrainResult:
    """What a run produced; ``train_loss`` is the mean loss of the last optimizer step."""

    output_dir: Path
    steps: int
    train_loss: float | None
    eval_loss: float | None
    trained_tokens: int
    losses: list[float] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # turns with mask warnings, by code
    samples: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    initial_eval_loss: float | None = None  # held-out loss before the first step (not on resume)
    trained_tokens_per_s: float | None = None  # over the optimizer steps' own seconds (no eval, no loading)
    cost: dict = field(default_factory=dict)  # CostMeter report: seconds and peak RSS per phase
    best_step: int | None = None  # the step with the lowest eval loss during training
    best_eval_loss: float | None = None
    stopped_early: bool = False


def _split(records: list[dict], cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """Train and held-out records: the eval file, or a seeded `eval_split` of the data."""
    if cfg.eval_data:
        return records, load_records(cfg.eval_data)[: cfg.max_eval_records]
    if cfg.eval_split <= 0:
        return records, []
    order = list(range(len(records)))
    random.Random(cfg.seed).shuffle(order)
    n_eval = max(1, round(cfg.eval_split * len(records)))
    held = set(order[:n_eval])
    return ([r for i, r in enumerate(records) if i not in held],
            [records[i] for i in sorted(held)][: cfg.max_eval_records])


def _tokenised(tokenizer: Any, records: list[dict], cfg: TrainConfig, workers: int,
               cache: Path | None) -> tuple[list[Example], list[dict], MaskReport]:
    """Examples, reject entries and the mask report (maskcheck) of ``records``, tokenised in
    ``workers`` processes or read from ``cache`` (tokencache.py)."""
    examples: list[Example] = []
    rejects: list[dict] = []
    report = MaskReport()
    results = cached_tokenise(tokenizer, records, cfg.max_length, MaskOptions.from_config(cfg), workers, cache)
    for index, (record, result) in enumerate(zip(records, results)):
        report.add(record, index, result)
        examples.extend(result.examples)
        if result.dropped:
            rejects.append(make_reject(source=record.get("source") or cfg.data, stage="train", reason=result.dropped,
                                       record=record, detail={"why": result.detail} if result.detail else None,
                                       id=record.get("id")))
    return examples, rejects, report


def _check_resumable(out: Path, cfg: TrainConfig) -> None:
    saved = yaml.safe_load((out / "train_config.yaml").read_text(encoding="utf-8"))
    changed = [k for k in RESUME_KEYS if saved.get(k) != json.loads(cfg.model_dump_json()).get(k)]
    if changed:
        raise UserError(f"cannot resume: {', '.join(changed)} differ from the interrupted run")


def train(config: TrainConfig | dict) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data``; see TrainConfig for every option."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    cfg = config if isinstance(config, TrainConfig) else build_config(config)
    out = Path(cfg.output_dir)
    start_time = time.perf_counter()
    meter = CostMeter()

    # --- Devices and precision (precision.py): weights loaded in fp32 on CPU (no bf16 units),
    # bf16 on GPUs that have it, fp16 with loss scaling on those that do not; TF32 on.
    precision = machine_precision(cfg.dtype, cfg.trainable_dtype)
    _forget_other_precision(precision.mixed)
    # cpu=True on a GPU-less machine is what makes accelerate see torchrun's processes (gloo).
    accelerator = Accelerator(mixed_precision=precision.mixed, cpu=not torch.cuda.is_available())
    # Row length, tokens per forward pass, recomputation and threads, where the config left
    # them unset: chosen for the machine (defaults.py); flash attention when installed.
    on_cpu = accelerator.device.type == "cpu"
    cfg = for_machine(cfg, on_cpu)
    cfg = cfg.model_copy(update={"attn_implementation": pick_attention(
        cfg.attn_implementation, not on_cpu, None if on_cpu else installed_flash_attention())})
    loss_path = choose_loss(cfg.cross_entropy, not on_cpu)
    cfg = cfg.model_copy(update={"cross_entropy": loss_path})  # train_config.yaml records the one used
    compute_dtype = None if precision.mixed == "no" else precision.load
    trackers = list(dict.fromkeys([*cfg.report_to, *(["tensorboard"] if cfg.tensorboard else [])]))
    check_available(trackers)
    if on_cpu:
        torch.set_num_threads(cfg.threads)
        release_freed_memory()
    else:
        enable_tf32()
    # sdpa/eager get packed rows side by side with their own masks, flash kernels one
    # flattened row (packing.py).
    flatten = flattens_rows(cfg.attn_implementation)
    main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    if _sharded(accelerator) and (cfg.save_every or cfg.resume or cfg.load_best):
        raise UserError("checkpoints (save_every, resume, load_best) are not supported under FSDP yet: "
                        "use the ddp accelerate config, or train without them")
    set_seed(cfg.seed)  # before the model: LoRA initialisation draws from the RNG

    # --- Data: any input format -> canonical records -> ids, targets, loss weights. The
    # mask check runs before the model loads: a template that drops turns stops here.
    train_records, eval_records = _split(load_records(cfg.data, cfg.data_format), cfg)
    tokenizer = prepare_tokenizer(load_tokenizer(cfg.model), cfg.chat_template)
    new_token_ids = add_special_tokens(tokenizer, cfg.special_tokens)  # before tokenising: they are single tokens
    # Tokenised once: the main process first (in parallel workers, into the cache), then the
    # others read the cache.
    cache = cache_dir() / "tokenised" if cfg.tokenize_cache else None
    with accelerator.main_process_first():
        workers = (cfg.tokenize_workers or default_workers()) if main else 1
        examples, rejects, report = _tokenised(tokenizer, train_records, cfg, workers, cache)
        eval_examples, _, _ = _tokenised(tokenizer, eval_records, cfg, workers, cache)
    if main and rejects:  # every record the trainer could not use, with its reason
        out.mkdir(parents=True, exist_ok=True)
        write_rejects(out / "rejects.jsonl", rejects)
    elif main:
        (out / "rejects.jsonl").unlink(missing_ok=True)  # an earlier run's
    refusal = report.refusal()
    if refusal and not cfg.force:
        raise UserError(f"{cfg.data}: {refusal}")
    if not examples:
        first = next((r["detail"]["why"] for r in rejects if (r.get("detail") or {}).get("why")), None)
        raise UserError(f"no trainable records in {cfg.data} (dropped: {dict(report.dropped)})"
                        + (f"; the first: {first.splitlines()[0]}" if first else ""))
    model, _ = prepare_model(cfg, precision, tokenizer, new_token_ids, device=accelerator.device)
    initial_adapter = _save_initial_adapter(model, out, cfg) if main else None
    if cfg.neftune_alpha:
        add_neftune(model, cfg.neftune_alpha)
    if cfg.method != "qlora":  # on the device before the optimizer sees the parameters (fused AdamW)
        model.to(accelerator.device)

    # --- Schedule. A step is `grad_accum` micro-batches; every process gets equal shares.
    def windows(epoch: int) -> list[list[list[int]]]:
        batches = epoch_batches(examples, cfg.batch_size, cfg.packing, cfg.row_length, cfg.seed, epoch)
        mine = batches[: len(batches) // world * world][rank::world] or batches[:1]
        return [mine[i:i + cfg.grad_accum] for i in range(0, len(mine), cfg.grad_accum)]

    steps_per_epoch = len(windows(0))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = make_optimizer(model, cfg)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=round(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    meter.lap("load and tokenise")

    # --- Resume: weights, optimizer, scheduler, RNG, data position, metrics up to there.
    step, epoch, window_pos, trained_tokens = 0, 0, 0, 0
    metrics_path = out / "metrics.jsonl"
    checkpoints = list_checkpoints(out) if cfg.resume else []
    if checkpoints:
        _check_resumable(out, cfg)
        state = load_checkpoint(checkpoints[-1], accelerator.unwrap_model(model), optimizer, scheduler, rank)
        step, epoch, window_pos, trained_tokens = (state["step"], state["epoch"], state["window"],
                                                   state["trained_tokens"])
        if main:
            trim_metrics(metrics_path, step)
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        # A fresh run: earlier checkpoints would mislead --resume, so they move aside (or go, if asked).
        kept = set_aside_checkpoints(out, delete=cfg.overwrite)
        if kept:
            print(f"earlier checkpoints, metrics and config of {out} kept in {kept}", file=sys.stderr)
        metrics_path.unlink(missing_ok=True)
        (out / "train_config.yaml").write_text(yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False))
    log = JsonlAppender(metrics_path) if main else None
    reporter = Reporter(trackers, out, json.loads(cfg.model_dump_json())) if main and trackers else None
    tracker = BestTracker(cfg.early_stopping_patience, cfg.early_stopping_threshold)
    bar = StepBar(total_steps, step, enabled=cfg.progress and main)

    def eval_loss() -> float | None:
        """Held-out loss, each process scoring every world-th example, summed over all. The
        unwrapped model, so DDP's per-forward buffer sync (a collective) never waits on
        processes that have fewer examples; under FSDP every forward is a collective, so
        there each process scores all of them."""
        if not eval_examples:
            return None
        shard = not _sharded(accelerator)
        mine = eval_examples[rank::world] if shard else eval_examples
        scorer = accelerator.unwrap_model(model) if shard else model
        total, weight = examples_loss(scorer, mine, cfg.row_length, cfg.batch_size, device,
                                      cfg.forward_tokens, flatten, cross_entropy=loss_path,
                                      chunk=cfg.loss_chunk_tokens, compute_dtype=compute_dtype)
        sums = torch.tensor([total, weight], dtype=torch.float64, device=device)
        if shard:
            sums = accelerator.reduce(sums, reduction="sum")
        return float(sums[0] / sums[1]) if float(sums[1]) else None

    # --- The loop. One iteration = one optimizer step over one window of micro-batches.
    model.train()
    losses: list[float] = []
    stopped_early = False
    epoch_windows = windows(epoch)
    # The held-out loss before any step, so a run shows what training changed.
    initial_eval = eval_loss() if step == 0 else None
    if main and initial_eval is not None:
        log.append([{"step": 0, "eval_loss": round(initial_eval, 6)}])
    while step < total_steps:
        if window_pos >= len(epoch_windows):
            epoch, window_pos = epoch + 1, 0
            epoch_windows = windows(epoch)
        t0 = time.perf_counter()
        micro = [collate(part, cfg.packing, tokenizer.pad_token_id, cfg.row_length, flatten)
                 for idx in epoch_windows[window_pos]
                 for part in forward_parts([examples[i] for i in idx], cfg.packing, cfg.row_length, cfg.forward_tokens)]
        micro = [{k: v.to(device) for k, v in b.items()} for b in micro]
        # Normalise by the trained tokens of the whole step on all processes, so accumulation
        # and packing give the same gradient as one big batch would. Their count, not the sum
        # of their weights: a weight scales a token's pull, so half-weight turns move half as far.
        denom = accelerator.reduce(sum((b["weights"] > 0).sum() for b in micro).float(), reduction="sum")
        step_loss = torch.zeros((), device=device)
        for j, batch in enumerate(micro):
            # Skip the gradient all-reduce on all but the last micro-batch of the step.
            sync = nullcontext() if j == len(micro) - 1 else accelerator.no_sync(model)
            with sync:
                loss = loss_sum(model, batch, loss_path, cfg.loss_chunk_tokens, compute_dtype) / denom
                accelerator.backward(loss * world)  # DDP averages gradients over processes
            step_loss += loss.detach()
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.max_grad_norm:
            grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        else:
            grad_norm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16: an overflow skips the step, and its lr
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step, window_pos = step + 1, window_pos + 1

        step_tokens = int(denom.item())
        trained_tokens += step_tokens
        loss_value = float(accelerator.reduce(step_loss, reduction="sum"))
        losses.append(loss_value)
        seconds = time.perf_counter() - t0
        row = {"step": step, "epoch": round(epoch + window_pos / len(epoch_windows), 4),
               "loss": round(loss_value, 6), "lr": lr, "grad_norm": round(float(grad_norm), 6),
               "trained_tokens": trained_tokens, "tokens_per_s": round(step_tokens / seconds, 2),
               "step_seconds": round(seconds, 4)}
        if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
            row["eval_loss"] = eval_loss()
            if tracker.update(step, row["eval_loss"]) and cfg.load_best:
                _keep_best(accelerator, model, out, step)
        if main and (step % cfg.log_every == 0 or "eval_loss" in row or step == total_steps):
            log.append([row])
            if reporter:
                reporter.log(row, step)
        bar.step(loss_value, row["tokens_per_s"])
        if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
            accelerator.wait_for_everyone()
            rng_states = gather_rng_states(accelerator)
            if main:
                save_checkpoint(out, accelerator.unwrap_model(model), optimizer, scheduler,
                                {"step": step, "epoch": epoch, "window": window_pos,
                                 "trained_tokens": trained_tokens}, cfg.keep_checkpoints, rng_states)
        if tracker.should_stop:
            stopped_early = True
            break
    bar.close()
    meter.lap("train")

    # --- Finish: final eval, save the adapter or model, sample a few generations.
    final_eval = eval_loss()
    tracker.update(step, final_eval)  # the last weights are a candidate too
    best_file = out / "best" / "trainable.pt"
    if cfg.load_best and tracker.best_step not in (None, step) and best_file.is_file():
        load_trainable_state(accelerator.unwrap_model(model), torch.load(best_file, map_location="cpu"))
        final_eval = eval_loss()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    # Under FSDP the full state dict is gathered from every process (all of them call this).
    full_state = accelerator.get_state_dict(model) if _sharded(accelerator) else None
    samples: list[tuple[str, str]] = []
    prompts = cfg.sample_prompts or [p for p in map(prompt_messages, eval_records) if p][: cfg.num_samples]
    if main:
        if final_eval is not None:
            log.append([{"step": step, "eval_loss": round(final_eval, 6)}])
        log.close()
        if reporter:
            if final_eval is not None:
                reporter.log({"eval_loss": final_eval}, step)
            reporter.close()
        save_model(unwrapped, tokenizer, out, dtype=cfg.save_dtype, base=cfg.model, state_dict=full_state,
                   initial_adapter=initial_adapter)
    # Sharded weights are gathered by every layer's forward, so every process generates (in
    # step: greedy decoding of the same prompts); otherwise only the main one.
    if prompts and (main or _sharded(accelerator)):
        samples = generate_samples(unwrapped, tokenizer, prompts, cfg.sample_max_new_tokens)
    accelerator.wait_for_everyone()
    meter.lap("eval, save, samples")
    result = TrainResult(output_dir=out, steps=step, train_loss=losses[-1] if losses else None,
                         eval_loss=final_eval, trained_tokens=trained_tokens, losses=losses,
                         dropped=dict(report.dropped), samples=samples, warnings=dict(report.warnings),
                         seconds=time.perf_counter() - start_time, cost=meter.close(),
                         initial_eval_loss=initial_eval, best_step=tracker.best_step,
                         best_eval_loss=None if tracker.best_step is None else tracker.best_loss,
                         stopped_early=stopped_early)
    if main:
        # Seconds of every step in the metrics, so a resumed run counts the earlier ones too.
        step_seconds = sum(r.get("step_seconds", 0.0) for r in read_complete_lines(metrics_path))
        result.trained_tokens_per_s = round(trained_tokens / step_seconds, 2) if step_seconds else None
        _write_summary(out, result)
    return result


def _write_summary(out: Path, result: TrainResult) -> None:
    """``summary.json``: what the run trained and what it cost (time and peak RSS per phase)."""
    summary = {"steps": result.steps, "trained_tokens": result.trained_tokens,
               "trained_tokens_per_s": result.trained_tokens_per_s,
               "first_loss": result.losses[0] if result.losses else None, "train_loss": result.train_loss,
               "initial_eval_loss": result.initial_eval_loss, "eval_loss": result.eval_loss,
               "best_step": result.best_step, "best_eval_loss": result.best_eval_loss,
               "stopped_early": result.stopped_early,
               "threads": torch.get_num_threads(), "cost": result.cost}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _forget_other_precision(mixed: str) -> None:
    """accelerate keeps one mixed-precision setting per process and refuses another; a second
    run in the same process (a notebook, a test) asking for another one starts afresh. The
    process group (PartialState) is kept."""
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState._shared_state.get("_mixed_precision") not in (None, mixed):
        AcceleratorState._reset_state()


def _sharded(accelerator: Any) -> bool:
    """True under FSDP, where no process holds the whole model."""
    return accelerator.distributed_type.name == "FSDP"


def _save_initial_adapter(model: Any, out: Path, cfg: TrainConfig) -> Path | None:
    """PiSSA / OLoRA change the base weights at initialisation; the adapter as initialised
    is kept (``output_dir/lora-init``) so the saved one is converted into an adapter of the
    original base (peft's ``path_initial_model_for_weight_conversion``)."""
    if cfg.method not in ("lora", "qlora") or cfg.lora_init not in ("pissa", "olora"):
        return None
    folder = out / "lora-init"
    if cfg.resume and (folder / "adapter_config.json").is_file():
        return folder  # the same initialisation (seeded): the interrupted run's copy
    with atomic_dir(folder) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
    return folder


def _keep_best(accelerator: Any, model: Any, out: Path, step: int) -> None:
    """Write the trainable weights of the new best step to ``output_dir/best/`` (main process)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with atomic_path(out / "best" / "trainable.pt") as tmp:
            torch.save(trainable_state(accelerator.unwrap_model(model)), tmp)
        (out / "best" / "step.txt").write_text(f"{step}\n", encoding="utf-8")
    accelerator.wait_for_everyone()

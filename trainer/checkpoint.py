"""Resumable checkpoints: trainable weights, optimizer, scheduler, RNG states, data position.

A checkpoint is ``output_dir/checkpoints/step-NNNNNNN/`` and is written to a temp
folder then renamed, so the newest folder with a ``state.json`` is always complete. The
data position is (epoch, micro-batches consumed in it); batch order is a function of
(seed, epoch), so skipping that many micro-batches lands exactly where the run stopped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sftdata.errors import UserError
from sftdata.io import atomic_dir, read_complete_lines, write_rows

from .modeling import load_trainable_state, trainable_state

STATE = "state.json"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches in this process (dropout uses torch's)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(accelerator: Any) -> list[dict[str, Any]]:
    """Every process's RNG state, in rank order (call on all processes; the first one saves them).

    Each process draws its own dropout masks, so a resumed run reproduces the loss curve
    only if each rank gets back its own state, not the first rank's.
    """
    if accelerator.num_processes == 1:
        return [rng_state()]
    import torch.distributed as dist

    states: list[Any] = [None] * accelerator.num_processes
    dist.all_gather_object(states, rng_state())
    return states


def save_checkpoint(output_dir: str | Path, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], keep: int, rng_states: list[dict[str, Any]] | None = None) -> Path:
    """Write one checkpoint for ``state["step"]`` and prune all but the newest ``keep``.

    ``rng_states`` holds one RNG state per process (gather_rng_states); default: this one's.
    """
    root = checkpoint_dir(output_dir)
    target = root / f"step-{state['step']:07d}"
    with atomic_dir(target) as tmp:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_states or [rng_state()], tmp / "rng.pt")
        (tmp / STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE).is_file())


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, rank: int = 0) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this process's RNG from ``path``; return its loop state."""
    load_trainable_state(model, torch.load(path / "trainable.pt", map_location="cpu"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu"))
    states = torch.load(path / "rng.pt", weights_only=False)
    if isinstance(states, dict):  # written by one process only
        states = [states]
    if rank >= len(states):
        raise UserError(f"{path}: saved by {len(states)} process(es), cannot resume on {rank + 1} or more")
    set_rng_state(states[rank])
    return json.loads((path / STATE).read_text(encoding="utf-8"))


def set_aside_checkpoints(output_dir: str | Path, delete: bool) -> Path | None:
    """A fresh start in a folder with checkpoints: keep them (moved, with their metrics and
    config, to ``earlier-<time>/``) or, when ``delete``, remove them. Returns where they went."""
    out = Path(output_dir)
    if not list_checkpoints(out):
        return None
    if delete:
        shutil.rmtree(checkpoint_dir(out))
        return None
    target = out / time.strftime("earlier-%Y%m%d-%H%M%S")
    n = 1
    while target.exists():
        target, n = out / f"{time.strftime('earlier-%Y%m%d-%H%M%S')}-{n}", n + 1
    target.mkdir()
    for name in ("checkpoints", "metrics.jsonl", "train_config.yaml"):
        if (out / name).exists():
            os.replace(out / name, target / name)
    return target


def trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after ``step`` (by a run that was killed after it)."""
    rows = [r for r in read_complete_lines(path) if r.get("step", 0) <= step]
    write_rows(path, rows)

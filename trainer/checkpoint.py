"""Resumable checkpoints: trainable weights, optimizer, scheduler, RNG states, data position.

A checkpoint is ``output_dir/checkpoints/step-NNNNNNN/`` and is written to a temp
folder then renamed, so the newest folder with a ``state.json`` is always complete. The
data position is (epoch, micro-batches consumed in it); batch order is a function of
(seed, epoch), so skipping that many micro-batches lands exactly where the run stopped.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sftdata.io import atomic_dir, read_complete_lines, write_rows

from .modeling import load_trainable_state, trainable_state

STATE = "state.json"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches (dropout uses torch's)."""
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


def save_checkpoint(output_dir: str | Path, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], keep: int) -> Path:
    """Write one checkpoint for ``state["step"]`` and prune all but the newest ``keep``."""
    root = checkpoint_dir(output_dir)
    target = root / f"step-{state['step']:07d}"
    with atomic_dir(target) as tmp:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
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


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; return its loop state."""
    load_trainable_state(model, torch.load(path / "trainable.pt", map_location="cpu"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu"))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / STATE).read_text(encoding="utf-8"))


def trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after ``step`` (by a run that was killed after it)."""
    rows = [r for r in read_complete_lines(path) if r.get("step", 0) <= step]
    write_rows(path, rows)

"""Metrics to experiment trackers (``report_to``): tensorboard, wandb, mlflow.

Each is an optional dependency, imported only when asked for; a missing one is a one-line
error before training starts. Only the main process reports. metrics.jsonl is always
written: the trackers are copies of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from sftdata.errors import UserError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def _missing(name: str) -> UserError:
    return UserError(f"report_to {name} needs the {PACKAGES[name]} package: pip install {PACKAGES[name]}")


class Reporter:
    """Fans one metrics row out to every tracker asked for."""

    def __init__(self, names: Iterable[str], out: Path, config: dict[str, Any]):
        self.sinks: list[tuple[str, Any]] = []
        for name in dict.fromkeys(names):
            self.sinks.append((name, _open(name, out, config)))

    def log(self, row: dict[str, Any], step: int) -> None:
        values = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        for name, sink in self.sinks:
            if name == "tensorboard":
                for key, value in values.items():
                    sink.add_scalar(key, value, step)
            elif name == "wandb":
                sink.log(values, step=step)
            else:
                sink.log_metrics(values, step=step)

    def close(self) -> None:
        for name, sink in self.sinks:
            if name == "tensorboard":
                sink.close()
            elif name == "wandb":
                sink.finish()
            else:
                sink.end_run()


def _open(name: str, out: Path, config: dict[str, Any]) -> Any:
    if name == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing(name) from None
        return SummaryWriter(str(out / "tensorboard"))
    if name == "wandb":
        try:
            import wandb
        except ImportError:
            raise _missing(name) from None
        return wandb.init(dir=str(out), name=out.name, config=config)
    try:
        import mlflow
    except ImportError:
        raise _missing(name) from None
    mlflow.start_run(run_name=out.name)
    mlflow.log_params({k: str(v)[:250] for k, v in config.items()})
    return mlflow


def check_available(names: Iterable[str]) -> None:
    """Fail early (before loading a model) when a tracker's package is missing."""
    import importlib.util

    for name in names:
        module = "tensorboard" if name == "tensorboard" else name
        if importlib.util.find_spec(module) is None:
            raise _missing(name)

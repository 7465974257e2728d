"""Multi-GPU launch with the accelerate config files shipped beside this module.

    python -m sftdata.trainer.launch ddp   [--num-processes N] -- <sftdata train options>
    python -m sftdata.trainer.launch fsdp2 [--num-processes N] -- <sftdata train options>

runs ``accelerate launch --config_file <trainer/accelerate_{ddp,fsdp2}.yaml>
--num_processes N -m sftdata train ...`` (N: every visible GPU unless given). The trainer
itself needs nothing else: accelerate owns the process group, each process takes every
N-th micro-batch, the data is tokenised once by the main process (tokencache.py), held-out
loss is sharded across processes and summed, and under FSDP the saved model is the full
state dict gathered from all of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CONFIGS = ("ddp", "fsdp2")


def accelerate_config(name: str) -> Path:
    """The shipped accelerate config file for ``name`` (ddp | fsdp2)."""
    if name not in CONFIGS:
        raise ValueError(f"no accelerate config {name!r} (one of: {', '.join(CONFIGS)})")
    return Path(__file__).resolve().parent / f"accelerate_{name}.yaml"


def command(name: str, processes: int, train_args: list[str]) -> list[str]:
    """The ``accelerate launch`` command line."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(name)),
            "--num_processes", str(processes), "-m", "sftdata", "train", *train_args]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m sftdata.trainer.launch", description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=CONFIGS)
    parser.add_argument("--num-processes", type=int, default=None, help="default: every visible GPU")
    args = parser.parse_args(own)
    processes = args.num_processes
    if processes is None:
        import torch

        processes = max(1, torch.cuda.device_count())
    cmd = command(args.config, processes, train_args)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()

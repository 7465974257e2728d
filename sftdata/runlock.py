"""One process at a time per run directory (or per generation output).

Two ``sftdata run`` of one recipe at once would both append to the same generation
cache and replace each other's stages. ``exclusive`` takes an ``flock`` on a lock file
that holds the owner's pid; the kernel drops the lock when the process ends, however it
ends, so a killed run never leaves a stale lock behind. A second process either stops
at once with a message naming the lock file and the pid holding it, or, with
``wait=True``, waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, Iterator

from sftdata.errors import UserError


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text:
            return f"pid {int(text.split()[0])}"
    return "another process"


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike, what: str, wait: bool = False,
              log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock at ``lock_path`` for the ``with`` block.

    ``what`` names the thing locked in the messages ("the run directory runs/x").
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise UserError(f"{what} is in use by another sftdata process ({holder}; lock file "
                                f"{lock_path}); wait for it to finish, or pass --wait") from None
            if log:
                log(f"waiting for {holder} to finish with {what} ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiter)

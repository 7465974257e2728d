"""What this machine can give a run, and what a run cost it.

- ``torch_threads()``: every core, or one when other processes already keep the
  machine busy. On a loaded 2-core machine two spinning OpenMP threads made every
  training step several times slower than one.
- ``available_memory_mb()``: what the kernel says a new allocation can get.
- ``release_freed_memory()``: make glibc give freed blocks back at once, so a training
  step's temporary tensors do not stay resident after it.
- ``CostMeter``: wall time and peak resident memory (RSS) per phase of a command, so
  ``sftdata run`` and ``sftdata train`` can say what they cost. A background thread
  samples this process's RSS every few milliseconds; the whole run's peak is the
  kernel's own high-water mark (``ru_maxrss``), exact. Nothing here resets that mark, so
  ``/usr/bin/time -v`` around a command still reports its true peak.

No torch import here: the data commands use this too.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20
_STARTED = time.monotonic()


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def others_load() -> float:
    """The 1-minute load average less this process's own share of it (its CPU time over
    its lifetime, weighted by how much of the last minute it has been alive)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    alive = max(time.monotonic() - _STARTED, 1e-3)
    times = os.times()
    own = (times.user + times.system) / alive * min(1.0, alive / 60.0)
    return max(0.0, load - own)


def torch_threads(load: float | None = None) -> int:
    """Threads for torch: every core, or 1 when other work already fills the machine
    (``load`` = the others' load average, measured when not given)."""
    n = cores()
    busy = (others_load() if load is None else load) > n - 0.5
    return 1 if busy and n > 1 else n


def available_memory_mb() -> float | None:
    """MemAvailable from /proc/meminfo in MiB (None where there is no /proc)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# mallopt parameter: the size above which glibc serves (and frees) blocks with mmap.
_M_MMAP_THRESHOLD = -3


def release_freed_memory(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold, so every block above ``threshold`` bytes goes back to
    the system as soon as it is freed. True when set (glibc only; a user's own
    ``MALLOC_MMAP_THRESHOLD_`` is left alone).

    By default glibc raises the threshold after each large free, up to 32 MiB, and then
    serves tensors that size from its heap, which fragments and is rarely returned: on a
    CPU training step that kept ~0.7 GiB of freed memory resident. A fixed threshold costs
    fresh page faults for each big tensor, a small share of a step's matrix products.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE_MB
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (the kernel's high-water mark)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if os.uname().sysname == "Darwin" else peak / 1024


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss_mb: float


@dataclass
class CostMeter:
    """Per-phase wall time and peak RSS: ``with meter.phase("audit"): ...`` or, for code
    that reads top to bottom, ``meter.lap("tokenise")`` to close the phase that began at
    the previous lap. ``report()`` is JSON-ready."""

    interval: float = 0.01
    phases: list[Phase] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._start = self._lap_start = time.perf_counter()
        self._window_peak = rss_mb()
        # The sampler's read-max-write must not straddle a lap's reset, or a finished
        # phase's peak leaks into the next one.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="sftdata-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = rss_mb()
            with self._lock:
                self._window_peak = max(self._window_peak, now)

    def lap(self, name: str) -> Phase:
        """Close the phase since the previous lap (or the start) under ``name``."""
        now = time.perf_counter()
        with self._lock:
            phase = Phase(name, round(now - self._lap_start, 2), round(max(self._window_peak, rss_mb()), 1))
            self._lap_start, self._window_peak = now, rss_mb()
        self.phases.append(phase)
        return phase

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Measure the block as one phase (time before it is not counted in it)."""
        with self._lock:
            self._lap_start, self._window_peak = time.perf_counter(), rss_mb()
        try:
            yield
        finally:
            self.lap(name)

    def add(self, phases: list[dict]) -> None:
        """Take phases measured elsewhere (e.g. the trainer's), as ``report()["phases"]`` rows."""
        self.phases += [Phase(**p) for p in phases]

    def report(self) -> dict:
        """``{"seconds", "peak_rss_mb", "phases": [{"name", "seconds", "peak_rss_mb"}]}``."""
        return {"seconds": round(time.perf_counter() - self._start, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
                "phases": [vars(p).copy() for p in self.phases]}

    def close(self) -> dict:
        """Stop sampling; the final report."""
        self._stop.set()
        self._thread.join()
        return self.report()

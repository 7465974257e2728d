"""sftdata.machine: threads from the load, per-phase cost, and freed memory returned."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sftdata.machine import CostMeter, cores, peak_rss_mb, rss_mb, torch_threads


def test_threads_follow_the_others_load():
    assert torch_threads(load=0.0) == cores()
    if cores() > 1:
        assert torch_threads(load=float(cores())) == 1


def test_cost_meter_times_phases_and_catches_a_short_peak():
    meter = CostMeter()
    before = rss_mb()
    with meter.phase("allocate"):
        block = bytearray(300 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        time.sleep(0.1)
        del block
    with meter.phase("sleep"):
        time.sleep(0.05)
    report = meter.close()
    allocate, rest = report["phases"]
    assert [allocate["name"], rest["name"]] == ["allocate", "sleep"]
    assert allocate["peak_rss_mb"] > before + 250 and rest["peak_rss_mb"] < allocate["peak_rss_mb"] - 250
    assert allocate["seconds"] >= 0.1 and rest["seconds"] >= 0.05
    assert report["peak_rss_mb"] == pytest.approx(peak_rss_mb(), abs=5) and report["peak_rss_mb"] >= allocate["peak_rss_mb"] - 1


RETAINED = """
import sys
from sftdata.machine import release_freed_memory, rss_mb
if sys.argv[1] == "release":
    assert release_freed_memory()
big = bytearray(16 * 2**20); del big   # glibc's default raises its mmap threshold here
blocks = [bytearray(2**20) for _ in range(300)]
for b in blocks:
    b[::4096] = b"x" * len(b[::4096])
before = rss_mb()
last = blocks[-1]  # keeps the top of the heap in use
del blocks
print(before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_release_freed_memory_gives_freed_blocks_back():
    freed = {mode: float(subprocess.run([sys.executable, "-c", RETAINED, mode], capture_output=True, text=True,
                                        check=True).stdout) for mode in ("default", "release")}
    assert freed["release"] > 250 and freed["default"] < freed["release"] / 3, freed

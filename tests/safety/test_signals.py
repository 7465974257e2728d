"""Signals: SIGTERM mid-write removes the temp file and exits 143 with one line; a temp
file left by SIGKILL is swept by the next write to its folder; Ctrl-C at any moment of
start-up is one line ``interrupted`` (exit 130), never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from sftdata.atomic import atomic_path, sweep_stale_temps, temp_prefix
from tests.conftest import SFTDATA


def _big_input(path, n=60_000):
    line = json.dumps({"instruction": "Say a number in words, please.", "output": "A number, in words."})
    path.write_text((line + "\n") * n, encoding="utf-8")


def _temps(folder):
    return [p for p in folder.iterdir() if p.name.startswith(".sftdata-tmp-")]


def _start_convert_and_wait_for_its_temp(tmp_path):
    """A convert whose record-by-record write takes a while; returns once its temp exists."""
    _big_input(tmp_path / "in.jsonl")
    proc = subprocess.Popen([str(SFTDATA), "convert", "in.jsonl", "-o", "out.jsonl", "--to", "canonical"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _temps(tmp_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no temp file appeared: {proc.communicate()}")
        time.sleep(0.005)
    return proc


def test_sigterm_during_a_write_leaves_no_temp_file(tmp_path):
    proc = _start_convert_and_wait_for_its_temp(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "terminated"
    assert _temps(tmp_path) == [] and not (tmp_path / "out.jsonl").exists()


def test_a_temp_file_left_by_sigkill_is_swept_by_the_next_run(tmp_path):
    proc = _start_convert_and_wait_for_its_temp(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    left = _temps(tmp_path)
    assert left, "SIGKILL cannot clean up: the temp file is still there"
    user_file = tmp_path / ".sftdata-notes.txt"  # not sftdata's temp naming: never touched
    user_file.write_text("mine")
    (tmp_path / "small.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    again = subprocess.run([str(SFTDATA), "convert", "small.jsonl", "-o", "small_out.jsonl", "--to", "sharegpt"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert _temps(tmp_path) == [] and user_file.read_text() == "mine"


def test_the_sweep_only_takes_temps_of_dead_processes(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".sftdata-tmp-{dead.pid}-abcd1234-data.jsonl"
    stale_dir = tmp_path / f".sftdata-tmp-{dead.pid}-efgh5678-model"
    live = tmp_path / f".sftdata-tmp-{os.getppid()}-ijkl9012-data.jsonl"  # pytest's parent: alive
    mine_earlier = tmp_path / f"{temp_prefix()}mnop3456-data.jsonl"  # our pid, but not ours
    others = [tmp_path / "data.jsonl", tmp_path / ".sftdata-tmp-notapid-x"]
    for path in (stale, live, mine_earlier, *others):
        path.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "weights").write_text("x")
    removed = sweep_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir, mine_earlier])
    assert live.exists() and all(p.exists() for p in others)
    with atomic_path(tmp_path / "busy.jsonl") as in_progress:  # a temp this process is writing
        in_progress.write_text("x")
        assert sweep_stale_temps(tmp_path) == [] and in_progress.exists()
    assert (tmp_path / "busy.jsonl").read_text() == "x"


def _main_has_started(pid: int) -> bool:
    """True once ``sftdata.cli.main`` runs: its first act is to catch SIGTERM, which shows
    in /proc/PID/status. (Before that it is the interpreter's own start-up, no sftdata
    code at all.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1, 0.3, 0.6, 1.0, 1.5])
def test_ctrl_c_at_any_moment_of_start_up_is_one_line(tmp_path, delay):
    """Before, Ctrl-C in the first ~1.5 s (importing typer, rich, polars) was a traceback."""
    (tmp_path / "in.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    proc = subprocess.Popen([str(SFTDATA), "convert", "in.jsonl", "-o", "out.jsonl", "--to", "sharegpt"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _main_has_started(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert proc.poll() is None, "the command ended before its main() was seen starting"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    if proc.returncode != 0:  # it may have finished before the signal came
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", (proc.returncode, err)
    assert _temps(tmp_path) == []

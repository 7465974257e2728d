"""Concurrent runs: two ``sftdata run`` of one recipe at once used to append to the same
generation cache (40 records for num=20). The run directory is locked now: a second run
stops at once naming the holder, or waits with ``--wait``; two ``sftdata generate`` of one
output are refused the same way."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time

from sftdata.generate.fake_server import FakeServer
from sftdata.io import read_complete_lines
from sftdata.ownership import mark_folder
from sftdata.runlock import exclusive
from tests.conftest import SFTDATA
from tests.safety.helpers import assert_one_line_error


def _recipe(tmp_path, url: str, num: int) -> None:
    (tmp_path / "recipe.yaml").write_text(
        f"name: gen\nrun_dir: {tmp_path / 'run'}\ninputs:\n"
        f"  - {{name: synth, generate: {{num: {num}, base_url: '{url}', model: fake, concurrency: 4}}}}\n",
        encoding="utf-8")


def test_a_second_run_stops_at_once_naming_the_holder(tmp_path, sftdata_cmd):
    mark_folder(tmp_path / "run")  # a run directory an earlier run made
    _recipe(tmp_path, "http://127.0.0.1:9/v1", 2)
    with exclusive(tmp_path / "run" / ".sftdata.lock", "test"):
        start = time.monotonic()
        proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
        line = assert_one_line_error(proc, 2, contains="in use by another sftdata process")
        assert f"pid {os.getpid()}" in line and ".sftdata.lock" in line
        assert time.monotonic() - start < 30


def test_two_runs_at_once_give_exactly_num_records(tmp_path):
    with FakeServer(latency=0.02) as server:
        _recipe(tmp_path, server.url, 20)
        cmd = [str(SFTDATA), "run", "recipe.yaml", "--wait"]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    generated = [p for p in (tmp_path / "run" / "generate").glob("synth-*.jsonl") if "rejects" not in p.name]
    assert len(generated) == 1
    records = read_complete_lines(generated[0])
    assert len(records) == 20 and len({r["id"] for r in records}) == 20
    assert len(read_complete_lines(tmp_path / "run" / "data.jsonl")) == 20
    assert any("(cached)" in out + err for out, err in outs)  # the second reused the first's stage


def test_two_generate_commands_on_one_output_are_refused(tmp_path, sftdata_cmd):
    out = tmp_path / "out.jsonl"
    with open(out, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = sftdata_cmd("generate", "-n", "2", "-o", out, "--base-url", "http://127.0.0.1:9/v1",
                           "--model", "m", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="being written by another sftdata process")

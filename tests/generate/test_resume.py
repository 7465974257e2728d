"""Kill a real ``sftdata generate`` process mid-run, re-run the same command: nothing
lost, nothing duplicated."""

import json
import os
import signal
import subprocess
import sys
import time

from sftdata.generate.fake_server import FakeServer
from sftdata.io import read_complete_lines

CLI = [sys.executable, "-c", "from sftdata.cli import main; main()"]


def _lines(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_and_rerun_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    with FakeServer(latency=0.03, fault_rate=0.1, seed=11) as server:
        cmd = CLI + ["generate", "-n", "40", "-o", str(out), "--base-url", server.url,
                     "--concurrency", "4", "--timeout", "1"]
        kept_before = []
        for kill_at in (8, 20):  # kill twice, at different points
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while _lines(out) < kill_at and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL
            kept_before.append(out.read_bytes())
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming:" in done.stderr
    records = read_complete_lines(out)
    assert len(records) == 40
    assert len({r["id"] for r in records}) == 40
    assert len({r["meta"]["instruction"] for r in records}) == 40
    final = out.read_bytes()
    for snapshot in kept_before:  # every complete line written before a kill survives, in place
        complete = snapshot[: snapshot.rfind(b"\n") + 1]
        assert final.startswith(complete) and complete.count(b"\n") >= 8
    state = json.loads((tmp_path / "out.jsonl.state.json").read_text())
    assert state["accepted"] == 40 and state["totals"]["runs"] == 3


def test_changed_options_refuse_to_resume_and_foreign_output_is_kept(tmp_path, cli):
    out = tmp_path / "out.jsonl"
    with FakeServer() as server:
        ok = cli("generate", "-n", "2", "-o", out, "--base-url", server.url)
        assert ok.exit_code == 0, ok.stderr
        changed = cli("generate", "-n", "3", "-o", out, "--base-url", server.url, "--seed", "5")
        assert changed.exit_code == 2 and "different options" in changed.stderr
        foreign = tmp_path / "mine.jsonl"
        foreign.write_text('{"instruction": "x", "output": "y"}\n')
        refused = cli("generate", "-n", "2", "-o", foreign, "--base-url", server.url)
        assert refused.exit_code == 2 and "--overwrite" in refused.stderr
        assert foreign.read_text() == '{"instruction": "x", "output": "y"}\n'
        again = cli("generate", "-n", "2", "-o", foreign, "--base-url", server.url, "--overwrite")
        assert again.exit_code == 0 and len(read_complete_lines(foreign)) == 2

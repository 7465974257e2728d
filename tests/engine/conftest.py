"""A real Ray cluster for the engine tests: ``ray start --head`` on loopback with 2 CPUs,
started by the test session and stopped (its process group) at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """The address (``127.0.0.1:PORT``) of a head node with 2 CPUs."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         "--object-store-memory=500000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert head.poll() is None, head.stderr.read().decode()
            probe = subprocess.run(
                [sys.executable, "-c", f"import ray; ray.init(address='{address}'); "
                 "assert ray.cluster_resources()['CPU'] == 2"],
                capture_output=True, timeout=60, env={**os.environ, "RAY_AUTH_MODE": "token"})
            if probe.returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail("the Ray head node did not come up in 90 s")
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)

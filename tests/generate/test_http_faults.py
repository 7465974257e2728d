"""Fault injection over real HTTP: a loopback server answering 429 (with Retry-After), 500,
hangs past the timeout, cut connections, truncated JSON and garbage. The run must still
end with exactly N records."""

import time

import pytest

from sftdata.generate import GenerateConfig, generate
from sftdata.generate.backends import backoff_delay, retry_after_seconds
from sftdata.generate.fake_server import FAULTS, FakeServer
from sftdata.io import read_complete_lines


def run(tmp_path, server, num, **kw):
    cfg = GenerateConfig(num=num, output=tmp_path / "out.jsonl", base_url=server.url,
                         request_timeout=kw.pop("request_timeout", 0.5), backoff_base=0.02,
                         backoff_max=0.2, **kw)
    return generate(cfg)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_kind_is_survived(tmp_path, fault):
    with FakeServer(faults=[fault] * 3, hang=1.0) as server:
        summary = run(tmp_path, server, num=3, concurrency=2)
        assert server.served[fault] == 3
    records = read_complete_lines(tmp_path / "out.jsonl")
    assert summary.complete and len(records) == 3 and len({r["id"] for r in records}) == 3
    transient = {"429": "http_429", "500": "http_500", "timeout": "timeout", "disconnect": "connection"}
    if fault in transient:
        assert summary.retries[transient[fault]] == 3
    else:  # a 200 that is not a chat completion: counted and skipped
        assert summary.rejects_by_reason["malformed_completion"] == 3


def test_random_faults_at_thirty_percent_still_give_exactly_n(tmp_path):
    with FakeServer(fault_rate=0.3, hang=1.0, seed=7) as server:
        summary = run(tmp_path, server, num=25, concurrency=8)
        faults = {k: v for k, v in server.served.items() if k != "ok"}
    records = read_complete_lines(tmp_path / "out.jsonl")
    assert len(records) == 25 and len({r["id"] for r in records}) == 25
    assert sum(faults.values()) >= 10 and summary.requests > 25


def test_retry_after_is_honoured(tmp_path):
    with FakeServer(faults=["429"]) as server:
        start = time.monotonic()
        run(tmp_path, server, num=1, concurrency=1, max_requests=5)
        elapsed = time.monotonic() - start
    assert elapsed >= 0.05  # the server asked for 0.05 s


def test_backoff_grows_and_respects_retry_after():
    import random

    rng = random.Random(0)
    caps = [max(backoff_delay(a, 0.5, 30, None, rng) for _ in range(200)) for a in range(5)]
    assert caps == sorted(caps) and caps[-1] > 4 * caps[0]
    assert backoff_delay(0, 0.01, 1.0, 0.7, rng) >= 0.7
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "150"}) == 0.15
    assert retry_after_seconds({}) is None


def test_context_too_long_shrinks_max_tokens(tmp_path):
    with FakeServer(max_context_tokens=500) as server:
        summary = run(tmp_path, server, num=2, concurrency=1)
        seen = list(server.max_tokens_seen)
    assert summary.complete and summary.retries.get("context_shrink", 0) >= 1
    assert 768 in seen and min(seen) < 768  # the 768-token bootstrap was retried smaller


def test_api_key_is_sent_but_never_written(tmp_path, monkeypatch):
    secret = "sk-test-" + "9" * 24
    monkeypatch.setenv("MY_KEY", secret)
    with FakeServer() as server:
        summary = run(tmp_path, server, num=2, api_key_env="MY_KEY")
        sent = set(server.authorizations)
    assert summary.complete and sent == {f"Bearer {secret}"}
    for path in tmp_path.rglob("*"):  # the rejects are in .rejects/ too
        if path.is_file():
            assert secret not in path.read_text(errors="replace")

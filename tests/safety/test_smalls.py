"""The smaller findings, through the installed command: secrets in URLs, mix totals,
not_sampled rejects of a recipe mix, generation resume however the output path is spelt,
messages that say what is wrong, and a dead or failing endpoint that stops the run at
once with one clear line."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from sftdata.generate.backends import redact_url
from sftdata.generate.fake_server import FakeServer
from sftdata.io import read_complete_lines
from tests.safety.helpers import assert_one_line_error, write_alpaca

SECRET = "sk-live-" + "7" * 20


@pytest.mark.parametrize("url", [
    f"https://api.example.com/v1?api-key={SECRET}",
    f"https://api.example.com/v1?api-version=2024-06-01&key={SECRET}#frag",
    f"https://user:{SECRET}@api.example.com/v1",
    f"https://{SECRET}@api.example.com/v1?token={SECRET}",
])
def test_redact_url_drops_credentials_and_query_values(url):
    shown = redact_url(url)
    assert SECRET not in shown and shown.startswith("https://api.example.com/v1")


def test_a_key_in_the_url_is_never_printed(tmp_path, sftdata_cmd):
    url = f"http://user:{SECRET}@127.0.0.1:9/v1?api-key={SECRET}"
    proc = sftdata_cmd("generate", "-n", "1", "-o", "out.jsonl", "--base-url", url, "--model", "m", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="cannot connect")
    assert SECRET not in proc.stdout + proc.stderr
    assert all(SECRET not in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("args, contains", [
    (["--total", "-5"], "--total"),
    (["--total", "0"], "--total"),
    (["-t", "0"], "--temperature"),
    (["--total", "100000000000"], "over 1000x"),
])
def test_mix_totals_are_bounded_one_line_errors(tmp_path, sftdata_cmd, args, contains):
    write_alpaca(tmp_path / "a.jsonl", n=20)
    start = time.monotonic()
    proc = sftdata_cmd("mix", "-o", "out.jsonl", "-s", "a.jsonl", *args, cwd=tmp_path)
    assert_one_line_error(proc, 2, contains=contains)
    assert time.monotonic() - start < 60 and not (tmp_path / "out.jsonl").exists()


def test_a_recipe_mix_writes_its_not_sampled_records_to_the_rejects(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "domain.jsonl", n=10)
    write_alpaca(tmp_path / "general.jsonl", n=40, start=100)
    (tmp_path / "recipe.yaml").write_text(
        f"name: m\nrun_dir: {tmp_path / 'run'}\ninputs:\n  - {{path: domain.jsonl, name: domain}}\n"
        "mix:\n  sources:\n    - {name: main, ratio: 0.5}\n    - {path: general.jsonl, name: general, ratio: 0.5}\n"
        "output: {format: canonical}\n",
        encoding="utf-8")
    proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    rejects = read_complete_lines(run / "rejects.jsonl")
    unsampled = [r for r in rejects if r["reason"] == "not_sampled"]
    assert summary["rejected_by_reason"] == {"not_sampled": 30} and len(unsampled) == 30
    assert {r["source"] for r in unsampled} == {"general"} and {r["stage"] for r in unsampled} == {"mix"}
    kept = {r["id"] for r in read_complete_lines(run / "data.jsonl")}
    assert len(kept) == 20 and not kept & {r["record"]["id"] for r in unsampled}


def test_generation_resumes_however_the_output_path_is_spelt(tmp_path, sftdata_cmd):
    (tmp_path / "sub").mkdir()
    with FakeServer() as server:
        first = sftdata_cmd("generate", "-n", "2", "-o", "out.jsonl", "--base-url", server.url, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        again = sftdata_cmd("generate", "-n", "4", "-o", tmp_path / "sub" / ".." / "out.jsonl",
                            "--base-url", server.url, cwd=tmp_path / "sub")
    assert again.returncode == 0, again.stderr
    assert "resuming: 2 of 4" in again.stderr
    assert len(read_complete_lines(tmp_path / "out.jsonl")) == 4


@pytest.mark.parametrize("make, contains", [
    (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(200))), "gzip-compressed"),
    (lambda p: p.write_text("not json\n{broken\n"), "none of its 2 rows is a readable record (bad_json 2)"),
])
def test_an_unreadable_file_says_why(tmp_path, sftdata_cmd, make, contains):
    make(tmp_path / "data.jsonl")
    proc = sftdata_cmd("validate", "data.jsonl", cwd=tmp_path)
    line = assert_one_line_error(proc, 2, contains=contains)
    assert "columns (none)" not in line


def test_a_csv_header_naming_a_column_twice_is_an_error(tmp_path, sftdata_cmd):
    (tmp_path / "d.csv").write_text("instruction,output,output\nSay hi,hi,hello\n")
    proc = sftdata_cmd("convert", "d.csv", "-o", "o.jsonl", "--to", "sharegpt", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="names column 'output' twice")


def test_timeout_errors_name_the_option_the_user_typed(tmp_path, sftdata_cmd):
    proc = sftdata_cmd("generate", "-o", "o.jsonl", "--timeout", "0", "--base-url", "http://127.0.0.1:9/v1",
                       cwd=tmp_path)
    line = assert_one_line_error(proc, 2, contains="--timeout")
    assert "--request-timeout" not in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_nothing_listens_on_stops_at_once(tmp_path, sftdata_cmd):
    start = time.monotonic()
    proc = sftdata_cmd("generate", "-n", "5", "-o", "out.jsonl", "--base-url", f"http://127.0.0.1:{_free_port()}/v1",
                       "--model", "m", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="cannot connect")
    assert time.monotonic() - start < 30


class _Refusing:
    """A loopback server that accepts each connection and closes it at once."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def __exit__(self, *exc):
        self.sock.close()


class _Always500(http.server.BaseHTTPRequestHandler):
    def _fail(self):
        body = b'{"error": {"message": "internal"}}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _fail

    def log_message(self, *args):
        pass


def test_a_server_that_hangs_up_stops_at_once(tmp_path, sftdata_cmd):
    start = time.monotonic()
    with _Refusing() as server:
        proc = sftdata_cmd("generate", "-n", "5", "-o", "out.jsonl", "--base-url", server.url, "--model", "m",
                           cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="cannot connect")
    assert time.monotonic() - start < 30


def test_a_server_answering_500_to_everything_stops_early(tmp_path, sftdata_cmd):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always500)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        proc = sftdata_cmd("generate", "-n", "20", "-o", "out.jsonl", "--model", "m",
                           "--base-url", f"http://127.0.0.1:{httpd.server_address[1]}/v1", cwd=tmp_path)
        took = time.monotonic() - start
    finally:
        httpd.shutdown()
        httpd.server_close()
    line = assert_one_line_error(proc, 2, contains="requests all failed (gave_up_http_500 x5)")
    assert "none succeeded" in line and took < 60, took
    rejects = read_complete_lines(tmp_path / ".rejects" / "out.rejects.jsonl")
    assert len(rejects) >= 5 and {r["reason"] for r in rejects} == {"gave_up_http_500"}

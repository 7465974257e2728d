"""A loopback OpenAI-compatible judge for tests: answers ``/v1/chat/completions`` with
``answer(prompt)``, optionally with OpenAI-shaped logprobs, failing the first
``fail_first`` requests with 429; records concurrency and the headers it saw."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(self, answer, logprobs=None, fail_first=0, latency=0.0, refuse_logprobs=False):
        self.answer, self.logprobs, self.latency = answer, logprobs, latency
        self.fail_first, self.refuse_logprobs = fail_first, refuse_logprobs
        self.lock = threading.Lock()
        self.requests, self.in_flight, self.max_in_flight = 0, 0, 0
        self.bodies: list[dict] = []
        self.authorizations: set[str] = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload, headers=None):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"data": [{"id": "judge-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                    n = server.requests
                    server.bodies.append(body)
                    server.authorizations.add(self.headers.get("Authorization", ""))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.latency)
                    if n <= server.fail_first:
                        return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                    if server.refuse_logprobs and body.get("logprobs"):
                        return self._send(400, {"error": {"message": "logprobs are not supported"}})
                    prompt = body["messages"][-1]["content"]
                    choice = {"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": server.answer(prompt)}}
                    if body.get("logprobs") and server.logprobs:
                        choice["logprobs"] = {"content": server.logprobs(prompt)}
                    self._send(200, {"id": f"r{n}", "choices": [choice],
                                     "usage": {"prompt_tokens": 10, "completion_tokens": 3}})
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler

"""A loopback OpenAI-compatible server that answers Self-Instruct prompts, for tests and
benchmarks: fixed latency, and scripted or random faults (429 with Retry-After, 500,
hangs past the client timeout, a connection cut mid-body, truncated JSON, garbage text).

It recognises the shipped prompts by their wording and answers each well-formed, with
instructions made of random words so that they pass the ROUGE-L filter. It listens on
127.0.0.1 on a free port, in a background thread::

    with FakeServer(latency=0.05) as server:
        generate(GenerateConfig(base_url=server.url, model="fake", ...))
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "timeout", "disconnect", "truncated_json", "garbage")
_VERBS = ("Describe", "Explain", "List", "Summarise", "Compare", "Classify", "Rewrite",
          "Suggest", "Plan", "Estimate")


def _words(rng: random.Random, n: int) -> str:
    letters = "abcdefghijklmnoprstuvwz"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(4, 8))) for _ in range(n))


class FakeServer:
    """Serve ``/v1/chat/completions`` and ``/v1/models`` on 127.0.0.1 until closed.

    ``faults``: a list of fault names (or None for a normal answer) applied to requests
    in arrival order; ``fault_rate``: after the list, the chance of a random fault.
    ``hang``: how long a "timeout" fault stalls (set it above the client's timeout).
    """

    def __init__(self, latency: float = 0.0, faults: list[str | None] | None = None,
                 fault_rate: float = 0.0, hang: float = 2.0, seed: int = 0,
                 classification_every: int = 3, max_context_tokens: int | None = None):
        self.latency, self.fault_rate, self.hang = latency, fault_rate, hang
        self.faults = list(faults or [])
        self.classification_every = classification_every
        self.max_context_tokens = max_context_tokens
        self.prompts: list[str] = []  # every prompt received, for tests
        self.max_tokens_seen: list[int] = []
        self.authorizations: set[str] = set()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.served: dict[str, int] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- behaviour ------------------------------------------------------------------
    def _next(self) -> tuple[str | None, random.Random]:
        with self.lock:
            self.requests += 1
            if self.faults:
                fault = self.faults.pop(0)
            elif self.fault_rate and self.rng.random() < self.fault_rate:
                fault = self.rng.choice(FAULTS)
            else:
                fault = None
            key = fault or "ok"
            self.served[key] = self.served.get(key, 0) + 1
            return fault, random.Random(self.rng.random())

    def answer(self, prompt: str, rng: random.Random) -> str:
        """A well-formed reply to one of the shipped prompts."""
        if "Come up with" in prompt:
            numbers = [int(n) for n in re.findall(r"^(\d+)\.", prompt, re.M)]
            start = (max(numbers) if numbers else 0) + 1
            match = re.search(r"Come up with (\d+)", prompt)
            count = int(match.group(1)) if match else 5
            return "\n".join(f"{start + i}. {rng.choice(_VERBS)} {_words(rng, 6)}."
                             for i in range(count))
        task = prompt.rsplit("Task:", 1)[-1].strip()
        if "Class label" in prompt:
            return f"Class label: {_words(rng, 1)}\nInput: {_words(rng, 8)}"
        if "classification task" in prompt.lower():
            is_cls = sum(map(ord, task)) % self.classification_every == 0
            return "Yes" if is_cls else "No"
        return f"Input: {_words(rng, 5)}\nOutput: {_words(rng, 12)}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's
            # algorithm and delayed ACKs add ~40 ms+ to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, ctype="application/json", headers=None,
                      cut: bool = False):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                    self.wfile.flush()
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass
                if cut:
                    self.close_connection = True

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": "fake-self-instruct", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                fault, rng = server._next()
                prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
                with server.lock:
                    server.prompts.append(prompt)
                    server.max_tokens_seen.append(int(request.get("max_tokens") or 0))
                    server.authorizations.add(self.headers.get("Authorization") or "")
                time.sleep(server.latency)
                if fault == "timeout":
                    time.sleep(server.hang)
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "rate limited"}}',
                                      headers={"Retry-After": "0.05"})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if fault == "garbage":
                    return self._send(200, b"<html>upstream says hello</html>", "text/html")
                limit = server.max_context_tokens
                if limit and len(prompt.split()) + int(request.get("max_tokens") or 0) > limit:
                    return self._send(400, json.dumps({"error": {
                        "message": f"This model's maximum context length is {limit} tokens; "
                                   "please reduce the length of the messages or completion.",
                        "type": "invalid_request_error"}}).encode())
                text = server.answer(prompt, rng)
                body = json.dumps({
                    "id": f"chatcmpl-{rng.getrandbits(48):012x}", "object": "chat.completion",
                    "created": int(time.time()), "model": request.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(prompt.split()),
                              "completion_tokens": len(text.split()),
                              "total_tokens": len(prompt.split()) + len(text.split())},
                }).encode()
                if fault == "truncated_json":
                    body = body[: len(body) // 2]
                self._send(200, body, cut=fault == "disconnect")

        return Handler


def main() -> None:
    """``python -m sftdata.generate.fake_server --latency 0.05``: serve in the foreground
    (in its own process, so it does not share a GIL with the client being measured).
    Prints the base URL on the first line of stdout."""
    import argparse

    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible fake server.")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = FakeServer(latency=args.latency, fault_rate=args.fault_rate, seed=args.seed)
    print(server.url, flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

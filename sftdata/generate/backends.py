"""Chat-completion backends: any OpenAI-compatible server, with retries done right.

A backend has ``name``, ``model`` and ``async complete(messages, ...) -> Completion``.
``complete`` either returns a completion or raises ``BackendError(reason)`` for a
request that is given up (the pipeline counts the reason and moves on); it never lets
a transport error escape. The embedded transformers backend is in ``local_backend.py``.

Retries: 429, 408/409, 5xx, timeouts and connection errors are retried with
exponential backoff and full jitter, waiting at least what ``Retry-After`` (or
``retry-after-ms``) asks. A prompt too long for the context halves ``max_tokens`` and
tries again. A 200 answer that is not a chat completion is ``malformed_completion``.

A dead endpoint stops the run at once instead of retrying for minutes: ``start``
checks that the server answers at all (a refused connection is one clear error), and
when the first ``FIRST_FAILURES`` requests are all given up before any succeeded (every
request answered 500, a wrong model name, a wrong key...), ``complete`` raises
``EndpointDown``, a ``UserError``, instead of one more ``BackendError``. Until a first
request has succeeded, each gets at most ``EARLY_RETRIES`` retries (429s excepted), so
a server that fails everything is found out in seconds.

The API key is read from the environment variable named by the config and handed to
the client; it is never stored elsewhere, printed, or written to any output. URLs are
printed through ``redact_url``, which drops credentials and query values.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from sftdata.errors import UserError

_CONTEXT_RE = re.compile(
    r"context (length|window|size)|maximum context|too long|exceeds? (the )?(context|max)", re.I
)
MIN_MAX_TOKENS = 16
# Given-up requests, before any success, after which the endpoint is declared down; and
# the retries a request gets before any success (not for 429s: those servers are alive).
FIRST_FAILURES = 5
EARLY_RETRIES = 3


@dataclass
class Completion:
    """One chat completion: the text, why it stopped, and what it cost."""

    text: str
    finish_reason: str  # "stop" or "length" (cut off by max_tokens)
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    logprobs: list | None = None  # choice.logprobs.content, when the request asked for them


class BackendError(Exception):
    """A request given up; ``reason`` is the counted reject reason."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


class EndpointDown(UserError):
    """The endpoint cannot be reached, or its first requests all failed: stop the run.

    ``reason`` is the last request's give-up reason when a request was under way.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


@dataclass
class TransportStats:
    """HTTP attempts and retries by cause (shown in the progress line and the summary)."""

    attempts: int = 0
    retries: dict[str, int] = field(default_factory=dict)

    def retried(self, cause: str) -> None:
        self.retries[cause] = self.retries.get(cause, 0) + 1


class Backend(Protocol):
    """What the pipeline needs of a backend. It may also set ``max_in_flight`` (requests
    it can serve at once; the pipeline runs no more workers than that)."""

    name: str
    model: str
    stats: TransportStats

    async def start(self) -> None: ...

    async def complete(
        self, messages: list[dict], *, max_tokens: int, temperature: float, top_p: float,
        stop: list[str] | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


def retry_after_seconds(headers) -> float | None:
    """The wait a 429/503 answer asks for (``retry-after-ms``, seconds, or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None,
                  rng: random.Random) -> float:
    """Full-jitter exponential backoff, never shorter than ``Retry-After`` (capped at 2x cap)."""
    delay = rng.uniform(0, min(cap, base * (2 ** attempt)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, 2 * cap))
    return delay


def redact_url(url: str) -> str:
    """The URL for printing: no ``user:password@`` part and no query values (keys travel
    as ``?api-key=...`` or ``?key=...`` too), no fragment.

    >>> redact_url("https://me:sk-1@host/v1?api-version=2024&api-key=sk-2#x")
    'https://host/v1?api-version=***&api-key=***'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        query = "&".join(f"{key}=***" for key, _ in
                         urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        if parts.query and not query:
            query = "***"
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))
    except ValueError:
        return "(an unparsable URL)"


def check_base_url(url: str) -> None:
    """A one-line error unless ``url`` is ``http(s)://host[:port][/path]``."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"base URL {redact_url(url)!r} is not an http(s)://host[:port]/path address")


class OpenAIBackend:
    """Chat completions from any OpenAI-compatible endpoint via ``openai.AsyncOpenAI``."""

    name = "openai-compatible"

    def __init__(self, base_url: str, model: str | None, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 6, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, seed: int = 0):
        import httpx
        import openai

        check_base_url(base_url)
        self._openai, self._httpx = openai, httpx
        # Servers without auth (llama.cpp, vLLM, Ollama) accept any key; the client needs one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=os.environ.get(api_key_env) or "no-key",
            timeout=timeout, max_retries=0,
        )
        self.base_url = redact_url(base_url)
        self.model = model or ""
        self.timeout = timeout
        self.max_retries, self.backoff_base, self.backoff_max = max_retries, backoff_base, backoff_max
        self.stats = TransportStats()
        self._rng = random.Random(seed)
        self.succeeded = 0
        self._early_failures: Counter[str] = Counter()

    async def start(self) -> None:
        """Check the endpoint answers at all; pick its first listed model when none was named."""
        o = self._openai
        client = self._client.with_options(timeout=min(self.timeout, 10.0))
        for attempt in range(3):
            try:
                models = await client.models.list()
                if not self.model:
                    self.model = models.data[0].id
                return
            except o.APITimeoutError:
                if self.model:
                    return  # slow, not dead: the requests have their own timeout and retries
                break
            except o.APIConnectionError as exc:
                if attempt == 2:
                    cause = exc.__cause__ or exc
                    raise EndpointDown(f"{self.base_url}: cannot connect ({cause}); is the server "
                                       "running at that address?") from None
                await asyncio.sleep(0.25 * 2 ** attempt)
            except Exception:  # noqa: BLE001 - the server answers; /models may just be missing
                break
        if not self.model:
            raise UserError(f"{self.base_url}: could not list models; name the model (--model, or "
                            "`model:` in a recipe)")

    def _given_up(self, reason: str) -> None:
        """Count a request given up; before any success, enough of them mean the endpoint is down."""
        if self.succeeded or reason == "gave_up_http_429":  # 429: alive, asking to slow down
            return
        self._early_failures[reason] += 1
        if sum(self._early_failures.values()) >= FIRST_FAILURES:
            causes = ", ".join(f"{cause} x{n}" for cause, n in self._early_failures.most_common())
            raise EndpointDown(f"{self.base_url}: the first {FIRST_FAILURES} requests all failed ({causes}) "
                               "and none succeeded; check the server, its URL and the model name", reason)

    async def complete(self, messages, *, max_tokens, temperature, top_p, stop=None,
                       extra: dict | None = None) -> Completion:
        """``extra`` adds request fields (e.g. ``{"logprobs": True, "top_logprobs": 5}``)."""
        try:
            completion = await self._complete(messages, max_tokens=max_tokens, temperature=temperature,
                                              top_p=top_p, stop=stop, extra=extra)
        except BackendError as exc:
            self._given_up(exc.reason)
            raise
        self.succeeded += 1
        return completion

    def _transient(self, exc: Exception) -> str | None:
        """The retry cause for a transient error, or None."""
        o = self._openai
        if isinstance(exc, o.APITimeoutError):
            return "timeout"
        if isinstance(exc, o.APIConnectionError):
            return "connection"
        if isinstance(exc, o.APIStatusError):
            status = exc.status_code
            if status in (408, 409, 429) or status >= 500:
                return f"http_{status}"
        return None

    async def _complete(self, messages, *, max_tokens, temperature, top_p, stop=None,
                        extra: dict | None = None) -> Completion:
        o = self._openai
        attempt = 0
        while True:
            self.stats.attempts += 1
            try:
                # The client's low-level POST: same auth, timeouts and status errors as
                # ``chat.completions.create`` but without re-validating our plain-dict
                # params or building pydantic models (~4 ms of CPU per request).
                body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                        "temperature": temperature, "top_p": top_p}
                if stop:
                    body["stop"] = stop
                body.update(extra or {})
                response = await self._client.post("/chat/completions", body=body,
                                                   cast_to=self._httpx.Response)
                return self._completion(response.json())
            except BackendError:
                raise
            except o.BadRequestError as exc:
                if _CONTEXT_RE.search(str(exc)) and max_tokens // 2 >= MIN_MAX_TOKENS:
                    max_tokens //= 2
                    self.stats.retried("context_shrink")
                    continue
                raise BackendError(
                    "prompt_too_long" if _CONTEXT_RE.search(str(exc)) else "bad_request"
                ) from None
            except Exception as exc:  # noqa: BLE001 - every transport failure is classified
                cause = self._transient(exc)
                if cause is None:
                    if isinstance(exc, o.APIStatusError):
                        raise BackendError(f"http_{exc.status_code}") from None
                    raise BackendError("malformed_completion") from None
                limit = self.max_retries
                if not self.succeeded and cause != "http_429":
                    limit = min(limit, EARLY_RETRIES)
                if attempt >= limit:
                    raise BackendError(f"gave_up_{cause}") from None
                response = getattr(exc, "response", None)
                wait = backoff_delay(attempt, self.backoff_base, self.backoff_max,
                                     retry_after_seconds(getattr(response, "headers", None)),
                                     self._rng)
                self.stats.retried(cause)
                attempt += 1
                await asyncio.sleep(wait)

    @staticmethod
    def _completion(data) -> Completion:
        """Check the decoded answer is a real chat completion; anything else is malformed."""
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("no text content")
            usage = data.get("usage") or {}
            return Completion(
                text=text,
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                request_id=str(data.get("id") or ""),
                logprobs=(choice.get("logprobs") or {}).get("content"),
            )
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            raise BackendError("malformed_completion") from None

    async def aclose(self) -> None:
        await self._client.close()

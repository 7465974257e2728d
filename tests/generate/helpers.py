"""A scripted in-process backend for unit tests (the style of simonw/llm's fake model).

``ScriptedBackend(reply)`` calls ``reply(stage, prompt)`` for each request and returns
its text; a reply may also be an exception (``BackendError``) to raise.
"""

from __future__ import annotations

import itertools
import random

from sftdata.generate.backends import BackendError, Completion, TransportStats


def words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(6)) for _ in range(n))


def stage_of(prompt: str) -> str:
    if "Come up with" in prompt:
        return "bootstrap"
    if "Class label" in prompt:
        return "output_first"
    if "classification task" in prompt.lower():
        return "classify"
    return "input_first"


class ScriptedBackend:
    name = "scripted"
    model = "scripted-model"

    def __init__(self, reply, finish_reason: str = "stop"):
        self.reply = reply
        self.finish_reason = finish_reason
        self.stats = TransportStats()
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count()

    async def start(self):
        pass

    async def aclose(self):
        pass

    async def complete(self, messages, *, max_tokens, temperature, top_p, stop=None):
        prompt = messages[-1]["content"]
        stage = stage_of(prompt)
        self.calls.append((stage, prompt))
        self.stats.attempts += 1
        out = self.reply(stage, prompt)
        if isinstance(out, BaseException):
            raise out
        return Completion(out, self.finish_reason, 10, 5, f"req-{next(self._ids)}")


def good_reply(seed: int = 0, classify: str = "No"):
    """A reply function answering every stage well with random distinct words."""
    rng = random.Random(seed)

    def reply(stage, prompt):
        if stage == "bootstrap":
            return "\n".join(f"{i}. Describe {words(rng, 5)}." for i in range(9, 14))
        if stage == "classify":
            return classify
        if stage == "output_first":
            return f"Class label: {words(rng, 1)}\nInput: {words(rng, 6)}"
        return f"Input: {words(rng, 4)}\nOutput: {words(rng, 8)}"

    return reply


def fail(reason: str) -> BackendError:
    return BackendError(reason)

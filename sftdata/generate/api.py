"""``generate(config) -> GenerateSummary``: the Python entry point (CLI and recipes).

It opens (or resumes) the output, starts the backend (the OpenAI-compatible client
when ``base_url`` is set, else the embedded transformers model), runs the pipeline and
returns what happened. A caller may pass its own ``backend`` object (anything with the
``Backend`` protocol), e.g. a scripted fake in tests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from sftdata.generate.backends import OpenAIBackend
from sftdata.generate.config import GenerateConfig
from sftdata.generate.pipeline import Run
from sftdata.generate.prompts import Prompts
from sftdata.generate.seeds import load_seeds
from sftdata.generate.state import RunFiles


@dataclass
class GenerateSummary:
    """What a run did; token and request counts are totals over resumed runs too."""

    output: str
    rejects_path: str
    backend: str
    model: str
    records: int  # records in the output now
    new_records: int  # written by this run
    complete: bool  # records == num
    requests: int
    prompt_tokens: int
    completion_tokens: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    seed_tasks: int = 0
    seed_rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict:
        return {**asdict(self), "total_tokens": self.total_tokens}


def make_backend(cfg: GenerateConfig):
    """The backend the config names: an endpoint if ``base_url`` is set, else embedded."""
    if cfg.base_url:
        return OpenAIBackend(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env,
                             timeout=cfg.request_timeout, max_retries=cfg.max_retries,
                             backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max,
                             seed=cfg.seed)
    from sftdata.generate.local_backend import LocalBackend

    return LocalBackend(cfg.local_model, seed=cfg.seed)


async def agenerate(cfg: GenerateConfig, backend=None,
                    on_start: Callable | None = None,
                    on_event: Callable[[Run], None] | None = None) -> GenerateSummary:
    """Async form of ``generate``."""
    start = time.monotonic()
    seeds, seed_rejects = load_seeds(cfg.seeds)
    prompts = Prompts(cfg.template_dir)
    files = RunFiles(Path(cfg.output), cfg.rejects, cfg.fingerprint(), cfg.overwrite)
    before = len(files.records)
    backend = backend or make_backend(cfg)
    try:
        await backend.start()
        run = Run(cfg, backend, prompts, seeds, files, on_event)
        if on_start:
            on_start(run)
        if not run.done():
            await run.run()
    finally:
        files.close()
        await backend.aclose()
    return GenerateSummary(
        output=str(cfg.output), rejects_path=str(files.rejects_path),
        backend=backend.name, model=backend.model,
        records=run.count.accepted, new_records=run.count.accepted - before,
        complete=run.count.accepted >= cfg.num, requests=run.totals.requests,
        prompt_tokens=run.totals.prompt_tokens, completion_tokens=run.totals.completion_tokens,
        rejects_by_reason=dict(sorted(run.count.rejects.items(), key=lambda kv: -kv[1])),
        retries=run.retries(), seed_tasks=len(seeds), seed_rejects=seed_rejects,
        seconds=round(time.monotonic() - start, 2),
    )


def generate(cfg: GenerateConfig, backend=None, on_start: Callable | None = None,
             on_event: Callable[[Run], None] | None = None) -> GenerateSummary:
    """Run Self-Instruct until ``cfg.output`` holds ``cfg.num`` records (or the request
    budget is spent), resuming a previous run of the same options. ``on_start(run)`` is
    called once the backend is up, ``on_event(run)`` after every finished request."""
    return asyncio.run(agenerate(cfg, backend, on_start, on_event))

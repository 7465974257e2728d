"""``GenerateConfig``: every knob of a Self-Instruct run, documented where it is declared.

The same model backs the CLI (``sftdata generate``) and the Python API / recipes
(``sftdata.generate.generate(GenerateConfig(...))``). Fields left ``None`` take a
default that depends on the backend: the embedded 135M model runs on a CPU at about 20
tokens/s, so it gets fewer few-shot examples and smaller completions than a server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

def _default_blocklist() -> list[str]:
    """The ``self_instruct`` filter's phrases (``sftdata/data/unproducible_keywords.txt``):
    phrases rather than Self-Instruct's bare words, so "the plot of the novel" passes."""
    from sftdata.steps.filters_content import read_terms

    return read_terms("unproducible_keywords.txt")


# Per-backend defaults for the fields left None: (openai-compatible server, embedded).
BACKEND_DEFAULTS = {
    "num_seed_examples": (6, 4),
    "num_generated_examples": (2, 1),
    "num_new_per_request": (8, 5),
    "bootstrap_max_tokens": (768, 128),
    "instance_max_tokens": (512, 64),
}


class GenerateConfig(BaseModel):
    """A Self-Instruct run: where to write, which model, and how to filter."""

    model_config = ConfigDict(extra="forbid")

    num: int = Field(20, ge=1, description="Records to have in the output when done.")
    output: Path = Field(description="Output JSONL of canonical records (appended as accepted).")
    seeds: Path | None = Field(
        None, description="Seed tasks in any supported format; default: the shipped set."
    )
    rejects: Path | None = Field(
        None, description="Rejected candidates with reasons; default: <output>.rejects.jsonl."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (…/v1). None: the embedded local model."
    )
    model: str | None = Field(
        None, description="Model name at the endpoint; None: the first one it lists."
    )
    local_model: str | None = Field(
        None, description="Local model folder for the embedded backend; None: bundled SmolLM2."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never logged)."
    )
    concurrency: int = Field(8, ge=1, le=512, description="Requests in flight at once.")
    template_dir: Path | None = Field(
        None, description="Folder whose .j2 files override templates/self_instruct/ by name."
    )
    seed: int = Field(0, description="Random seed for sampling few-shot examples.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature (bootstrap).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling (bootstrap).")
    num_seed_examples: int | None = Field(
        None, ge=0, description="Seed tasks shown per bootstrap request (Self-Instruct: 6)."
    )
    num_generated_examples: int | None = Field(
        None, ge=0, description="Generated tasks shown per bootstrap request (Self-Instruct: 2)."
    )
    num_new_per_request: int | None = Field(
        None, ge=1, description="New tasks asked for per bootstrap request."
    )
    bootstrap_max_tokens: int | None = Field(None, ge=16, description="Completion cap, bootstrap.")
    instance_max_tokens: int | None = Field(None, ge=16, description="Completion cap, instances.")
    rouge_threshold: float = Field(
        0.7, gt=0.0, lt=1.0, description="Reject a task whose ROUGE-L F with any other exceeds this."
    )
    min_words: int = Field(3, ge=0, description="Reject instructions with fewer words than this (words as the filters count them).")
    max_words: int = Field(150, ge=1, description="Reject instructions with more words than this.")
    blocklist: list[str] = Field(
        default_factory=_default_blocklist,
        description="Phrases marking tasks a text model cannot do ('draw a', 'plot a graph'...); "
        "default: the self_instruct filter's list.",
    )
    max_requests: int | None = Field(
        None, ge=1, description="Stop after this many requests (default 12*num + 40)."
    )
    request_timeout: float = Field(60.0, gt=0, description="Seconds per HTTP request.")
    max_retries: int = Field(6, ge=0, description="Retries per request on 429/5xx/timeouts.")
    backoff_base: float = Field(0.5, gt=0, description="First retry delay in seconds (doubles).")
    backoff_max: float = Field(30.0, gt=0, description="Longest single retry delay in seconds.")
    overwrite: bool = Field(False, description="Start afresh even if the output exists.")

    @property
    def embedded(self) -> bool:
        """True when no endpoint is configured: the in-process transformers model runs."""
        return not self.base_url

    def resolved(self, field: str) -> int:
        """A per-backend field: the given value, else the backend's default."""
        value = getattr(self, field)
        if value is not None:
            return value
        server, embedded = BACKEND_DEFAULTS[field]
        return embedded if self.embedded else server

    def effective_max_requests(self) -> int:
        """The request budget after which the run stops even if short of ``num``."""
        return self.max_requests or 12 * self.num + 40

    def fingerprint(self) -> str:
        """Hash of the fields that shape the data; resuming demands they are unchanged.

        ``num``, ``concurrency``, retry/timeout settings and ``max_requests`` may change
        between runs (e.g. ask for more records), the rest may not. The output path is
        not part of it (the state file beside the output is what is resumed, however the
        path is spelt), and the seeds and template folder count by their resolved paths:
        ``out.jsonl`` and ``./out.jsonl``, or the same seeds named from another folder,
        resume the same run.
        """
        free = {"num", "concurrency", "max_requests", "request_timeout", "max_retries",
                "backoff_base", "backoff_max", "overwrite", "api_key_env", "rejects", "output"}
        data = self.model_dump(mode="json", exclude=free)
        for name in ("seeds", "template_dir"):
            if data.get(name) is not None:
                data[name] = str(Path(data[name]).resolve())
        blob = json.dumps(data, sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()

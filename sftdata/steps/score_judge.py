"""``judge``: LLM-as-judge ratings through any OpenAI-compatible endpoint, or offline.

A rubric is a jinja template (rendered in the sandbox, ``sftdata.templating``) that
sets its scale and turns one record into the judge's prompt. Built in
(``templates/judge/``): ``alpagasus`` (overall accuracy and helpfulness, 0-5, as
AlpaGasus rates), ``deita_complexity`` (how demanding the instruction is, 1-6) and
``deita_quality`` (how good the response is, 1-6), in the style of deita's scorers.
``rubric_file`` takes your own. A rubric sees ``instruction`` (the user turns),
``response`` (the assistant turns), ``system``, ``messages`` and ``tools``, and sets::

    {% set scale_min = 1 %}{% set scale_max = 10 %}
    {% set prefill = "Score:" %}   {# optional: starts the answer, where the judge allows #}

The score (high = better on every built-in rubric) is read from the answer by
``judge_parse``: token probabilities when the endpoint returns them (G-Eval), else JSON
or a number in the text. It goes to ``meta.judge`` (or ``key``). An answer with no
score on the scale is a reject ``judge_unparseable`` with the raw answer; a request the
client gave up on is ``judge_error:<reason>`` and is asked again on the next run.

With ``base_url`` the requests go through the generator's client (retries, backoff,
``concurrency`` in flight; the key comes from ``api_key_env`` and is never logged);
without it the embedded SmolLM2-135M-Instruct answers (weak, but real and offline).
Answers are cached per record, judge and rubric, so a killed run resumes.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from pydantic import Field, model_validator

from sftdata.errors import UserError
from sftdata.generate.backends import BackendError, redact_url
from sftdata.records import text_of
from sftdata.steps.judge_parse import parse_score
from sftdata.steps.registry import register
from sftdata.steps.scores import ScoreCache, ScoreParams, ScoreStep, digest, progress_bar
from sftdata.templating import sandboxed_environment

BUILTIN_RUBRICS = ("alpagasus", "deita_complexity", "deita_quality")
KEPT_LOGPROB_POSITIONS = 12  # the score is near the start; the rest is not kept


def rubric_text(name: str, path: str | None) -> str:
    """The rubric's jinja source: a user file, or a built-in one by name."""
    if path:
        file = Path(path)
        if not file.is_file():
            raise UserError(f"rubric file not found: {path}")
        return file.read_text(encoding="utf-8")
    if name not in BUILTIN_RUBRICS:
        raise UserError(f"unknown rubric {name!r}; built in: {', '.join(BUILTIN_RUBRICS)} "
                        "(or give rubric_file)")
    return resources.files("sftdata.templates").joinpath("judge", f"{name}.j2").read_text(encoding="utf-8")


class Rubric:
    """A compiled rubric: ``prompt(record) -> (messages, prefill)`` and its scale."""

    def __init__(self, source: str, where: str):
        import jinja2

        self.where = where
        try:
            self.template = sandboxed_environment().from_string(source)
        except jinja2.TemplateError as exc:
            raise UserError(f"rubric {where}: {exc}") from None
        probe = self._module({"id": "probe", "messages": [{"role": "user", "content": "x"},
                                                           {"role": "assistant", "content": "y"}]})
        try:
            self.lo, self.hi = float(probe.scale_min), float(probe.scale_max)
        except (AttributeError, TypeError, ValueError):
            raise UserError(f"rubric {where}: set scale_min and scale_max "
                            "({% set scale_min = 0 %}{% set scale_max = 5 %})") from None
        if self.lo >= self.hi:
            raise UserError(f"rubric {where}: scale_min must be below scale_max")

    def _module(self, record: dict):
        import jinja2

        messages = record["messages"]
        context = {"instruction": text_of(messages, "user"), "response": text_of(messages, "assistant"),
                   "system": text_of(messages, "system"), "tools": record.get("tools"),
                   "messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
        try:
            return self.template.make_module(context)
        except jinja2.TemplateError as exc:
            raise UserError(f"rubric {self.where}: {type(exc).__name__}: {exc}") from None

    def prompt(self, record: dict) -> tuple[list[dict], str]:
        module = self._module(record)
        return [{"role": "user", "content": str(module).strip()}], str(getattr(module, "prefill", "") or "")


class JudgeParams(ScoreParams):
    """The rubric, the judge (an endpoint or the embedded model) and how to ask it."""

    rubric: str = Field("alpagasus", description=f"Built-in rubric: {', '.join(BUILTIN_RUBRICS)} (ignored when rubric_file is set).")
    rubric_file: str | None = Field(None, description="Your own rubric: a jinja file that sets scale_min / scale_max (see the step's docs).")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; unset = the embedded local model.")
    model: str | None = Field(None, description="Model name at the endpoint (default: its first listed), or a local causal LM folder without base_url (default: bundled SmolLM2).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (read, never logged).")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at the endpoint (the local model answers one at a time).")
    max_tokens: int = Field(48, ge=1, description="Longest judge answer: the score comes first, so a short answer is enough.")
    logprobs: bool = Field(True, description="Ask for token log-probabilities and score G-Eval style (expected score) when the judge returns them.")
    request_timeout: float = Field(120.0, gt=0, description="Seconds per request before it is retried.")
    max_retries: int = Field(6, ge=0, description="Retries of a failed request (429, 5xx, timeouts) with backoff.")
    device: str = Field("auto", description="Device of the local judge model.")

    @model_validator(mode="after")
    def _check_rubric(self):
        if self.rubric_file is None and self.rubric not in BUILTIN_RUBRICS:
            raise ValueError(f"unknown rubric {self.rubric!r}; built in: {', '.join(BUILTIN_RUBRICS)}")
        return self


@register
class Judge(ScoreStep):
    """LLM-as-judge rating of each record with a rubric (alpagasus 0-5, deita_complexity
    / deita_quality 1-6, or a rubric_file), through an endpoint or the embedded model
    (meta.judge; high = better)."""

    name = "judge"
    reason_codes = ("judge_unparseable", "judge_error:<reason>", "judge_too_low", "judge_too_high")
    Params = JudgeParams
    path_params = ("rubric_file",)

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        p = self.params
        self.source = rubric_text(p.rubric, p.rubric_file)
        self.rubric = Rubric(self.source, p.rubric_file or p.rubric)

    def fingerprint(self) -> dict:
        p = self.params
        if p.base_url:
            judge = {"endpoint": redact_url(p.base_url), "model": p.model}
        else:
            from sftdata.local_model import resolve_model_path
            from sftdata.steps.scores import model_identity

            judge = {"local": model_identity(resolve_model_path(p.model))}
        return {"judge": judge, "rubric": digest(self.source), "max_tokens": p.max_tokens,
                "logprobs": p.logprobs}

    def interpret(self, value: dict) -> dict:
        if "error" in value:
            return value
        parsed = parse_score(value["text"], value.get("logprobs"), self.rubric.lo, self.rubric.hi,
                             use_logprobs=self.params.logprobs)
        if parsed.score is None:
            return {"error": "judge_unparseable", "detail": {"why": parsed.why, "raw": value["text"]}}
        return {"score": parsed.score}

    def compute(self, records: list[dict], keys: list[str], cache: ScoreCache) -> dict[str, dict]:
        return asyncio.run(self._ask_all(records, keys, cache))

    async def _ask_all(self, records, keys, cache) -> dict[str, dict]:
        from sftdata.steps.judge_clients import make_judge

        p = self.params
        judge = make_judge(p.base_url, p.model, api_key_env=p.api_key_env, timeout=p.request_timeout,
                           max_retries=p.max_retries, logprobs=p.logprobs, device=p.device)
        out: dict[str, dict] = {}
        gate = asyncio.Semaphore(p.concurrency if p.base_url else 1)
        bar = progress_bar(len(records), "judge", p.progress)

        async def one(record: dict, key: str) -> None:
            messages, prefill = self.rubric.prompt(record)
            async with gate:
                try:
                    answer = await judge.answer(messages, p.max_tokens,
                                                prefill if judge.supports_prefix else "")
                except BackendError as exc:
                    out[key] = {"error": f"judge_error:{exc.reason}", "detail": {"reason": exc.reason}}
                else:
                    value = {"text": answer.text, "finish": answer.finish_reason,
                             "logprobs": (answer.logprobs or [])[:KEPT_LOGPROB_POSITIONS] or None}
                    out[key] = value
                    cache.put({key: value})
            bar.update(1)

        try:
            await judge.start()
            await asyncio.gather(*(one(r, k) for r, k in zip(records, keys)))
        finally:
            bar.close()
            await judge.aclose()
        return out

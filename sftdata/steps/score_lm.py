"""``perplexity`` and ``ifd``: scores from a local causal LM, on the tokens training sees.

perplexity = exp(mean loss per trained token) of the answer given its instruction, with
the model's chat template and the trainer's loss mask (``sftdata.trainer.data``). Low is
fluent or easy for the model; very high is often garbled text, very low often
repetitive boilerplate. Written to ``meta.perplexity``.

IFD, instruction-following difficulty ("From Quantity to Quality", Li et al. 2024):
the answer's loss given the instruction divided by its loss alone (the assistant turns
rendered without the user turns). Near 0 means the instruction makes the answer easy
to predict; near 1 means it barely helps; above 1 the answer fits the instruction worse
than no instruction at all, which the paper treats as misaligned data. Cherry LLM
keeps the *highest* IFD under 1: hard but answerable. Written to ``meta.ifd``, with the
two losses in ``meta.ifd_parts`` ({"loss", "answer_only_loss", "tokens"}).

Any local Hugging Face causal LM works (``model``: a folder; default the bundled
SmolLM2-135M-Instruct), on CPU or GPU (``device``). Records are batched and bucketed
by length (``sftdata.steps.lm_losses``); scores are cached per record, model and chat
template, so runs resume. A record the trainer could not train on (no trained tokens
after truncation, a template error) is a reject ``unscorable:<reason>``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from sftdata.steps import lm_losses
from sftdata.steps.registry import register
from sftdata.steps.scores import ScoreCache, ScoreParams, ScoreStep, progress_bar


class LMScoreParams(ScoreParams):
    """The model and how records are tokenised and batched."""

    model: str | None = Field(None, description="Local causal LM folder; unset = the bundled SmolLM2-135M-Instruct. Nothing is downloaded.")
    chat_template: str | None = Field(None, description="Jinja chat template file replacing the tokenizer's (as the trainer's chat_template).")
    max_length: int = Field(2048, ge=8, description="Longest tokenised record; longer ones are cut at a turn boundary, as in training.")
    train_on: Literal["assistant", "last", "all", "weight"] = Field("assistant", description="Which tokens are scored: the trainer's loss mask of the same name.")
    batch_tokens: int = Field(4096, ge=64, description="Tokens per forward pass (a packed row, or a padded length bucket).")
    packing: bool = Field(True, description="Padding-free packed rows (best-fit decreasing); off: length-sorted padded batches (for attention implementations without packed-sequence support).")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto = float32 on CPU, bfloat16 on GPU.")
    attn_implementation: str = Field("sdpa", description="transformers attention implementation (sdpa and eager support packing).")


class _LMStep(ScoreStep):
    Params = LMScoreParams
    passes: tuple[str, ...] = ("conditioned",)

    def fingerprint(self) -> dict:
        p = self.params
        return {"lm": lm_losses.lm_identity(p.model, p.device, p.dtype, p.chat_template),
                "max_length": p.max_length, "train_on": p.train_on, "passes": self.passes}

    def compute(self, records: list[dict], keys: list[str], cache: ScoreCache) -> dict[str, dict]:
        p = self.params
        lm = lm_losses.load_lm(p.model, p.device, p.dtype, p.chat_template, p.attn_implementation)
        out: dict[str, dict] = {}
        bar = progress_bar(len(records) * len(self.passes), f"{self.name} ({lm.device})", p.progress)
        try:
            # Chunks keep the cache file growing as work is done, so a kill loses little.
            chunk = max(64, p.batch_tokens // 16)
            for start in range(0, len(records), chunk):
                part, part_keys = records[start:start + chunk], keys[start:start + chunk]
                values = self._score(lm, part, bar)
                made = dict(zip(part_keys, values))
                cache.put(made)
                out.update(made)
        finally:
            bar.close()
        return out

    def _losses(self, lm, records: list[dict], bar, variants=None):
        p = self.params
        examples, reasons, truncated = lm_losses.tokenise_all(lm.tokenizer, records, p.max_length,
                                                              p.train_on, variants)
        ok = [i for i, e in enumerate(examples) if e is not None]
        bar.update(len(records) - len(ok))
        losses = lm_losses.mean_losses(lm, [examples[i] for i in ok], p.batch_tokens, p.packing,
                                       on_done=bar.update)
        full = [None] * len(records)
        for i, loss in zip(ok, losses):
            full[i] = (float(loss), examples[i].trained)
        return full, reasons, truncated

    def _score(self, lm, records, bar) -> list[dict]:
        raise NotImplementedError


def _unscorable(reason: str | None) -> dict:
    return {"error": f"unscorable:{reason}", "detail": {"reason": reason}}


@register
class Perplexity(_LMStep):
    """Perplexity of each answer given its instruction under a local causal LM, on the
    trained tokens (meta.perplexity; low = fluent/easy, very high = often garbled)."""

    name = "perplexity"
    reason_codes = ("perplexity_too_low", "perplexity_too_high", "unscorable:<reason>")

    def _score(self, lm, records, bar) -> list[dict]:
        losses, reasons, truncated = self._losses(lm, records, bar)
        out = []
        for loss, reason, cut in zip(losses, reasons, truncated):
            if loss is None:
                out.append(_unscorable(reason))
            else:
                out.append({"score": round(math.exp(min(loss[0], 80.0)), 4),
                            "meta": {"_parts": {"loss": round(loss[0], 6), "tokens": loss[1],
                                                "truncated": cut}}})
        return out


@register
class IFD(_LMStep):
    """Instruction-following difficulty: answer loss given the instruction / answer loss
    alone (meta.ifd; Cherry LLM keeps the highest under 1, above 1 = the instruction
    does not help)."""

    name = "ifd"
    reason_codes = ("ifd_too_low", "ifd_too_high", "unscorable:<reason>")
    passes = ("conditioned", "answer_only")

    def _score(self, lm, records, bar) -> list[dict]:
        cond, reasons, truncated = self._losses(lm, records, bar)
        alone, alone_reasons, _ = self._losses(lm, records, bar, lm_losses.answer_only_variants)
        out = []
        for c, a, reason, a_reason, cut in zip(cond, alone, reasons, alone_reasons, truncated):
            if c is None or a is None:
                out.append(_unscorable(reason if c is None else f"answer_only:{a_reason}"))
                continue
            ratio = c[0] / a[0] if a[0] > 0 else math.inf
            out.append({"score": round(ratio, 6) if math.isfinite(ratio) else None,
                        "meta": {"_parts": {"loss": round(c[0], 6), "answer_only_loss": round(a[0], 6),
                                            "tokens": c[1], "truncated": cut}}}
                       if math.isfinite(ratio) else _unscorable("zero_answer_only_loss"))
        return out

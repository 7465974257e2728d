"""``reward``: scores from any Hugging Face sequence-classification reward model.

The model (a local folder: ``AutoModelForSequenceClassification``) reads each whole
conversation rendered with its tokenizer's chat template (reward models are trained on
the chat format of the policy they judge), or, when the tokenizer has none, the user
and assistant turns as plain text. The score is the model's single logit (the usual
reward head, ``num_labels == 1``; high = better), or, for a classifier with several
labels, the probability of ``label``. Batched by length, on CPU or GPU; cached per
record and model. Written to ``meta.reward`` (or ``key``).
"""

from __future__ import annotations

from pydantic import Field

from sftdata.errors import UserError
from sftdata.steps.registry import register
from sftdata.steps.scores import ScoreCache, ScoreParams, ScoreStep, model_identity, progress_bar


class RewardParams(ScoreParams):
    """The reward model and how much of each record it reads."""

    model: str = Field(description="Local folder of a sequence-classification (reward) model.")
    label: int = Field(-1, description="With several labels: the index whose probability is the score (default: the last).")
    max_length: int = Field(2048, ge=8, description="Longest input in tokens; longer records are truncated from the end.")
    batch_size: int = Field(8, ge=1, description="Records per forward pass (sorted by length).")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda ...")


def conversation_text(tokenizer, record: dict) -> str:
    """The record as the reward model reads it (its chat template, else plain turns)."""
    from sftdata.trainer.data import render, template_messages

    messages = [m for m in record["messages"] if m["role"] != "tool" or m.get("content")]
    if getattr(tokenizer, "chat_template", None):
        try:
            return render(tokenizer, template_messages(messages), record.get("tools"))
        except Exception:  # noqa: BLE001 - a template may reject a shape: use plain text
            pass
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


@register
class Reward(ScoreStep):
    """Score each record with a sequence-classification reward model (meta.reward; high = better)."""

    name = "reward"
    reason_codes = ("reward_too_low", "reward_too_high")
    Params = RewardParams

    def fingerprint(self) -> dict:
        from pathlib import Path

        p = self.params
        if not Path(p.model).is_dir():
            raise UserError(f"reward model not found: {p.model} (give a local model folder)")
        return {"model": model_identity(p.model), "label": p.label, "max_length": p.max_length}

    def compute(self, records: list[dict], keys: list[str], cache: ScoreCache) -> dict[str, dict]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        p = self.params
        device = ("cuda" if torch.cuda.is_available() else "cpu") if p.device == "auto" else p.device
        tokenizer = AutoTokenizer.from_pretrained(p.model, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(p.model, local_files_only=True)
        model.to(device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        texts = [conversation_text(tokenizer, r) for r in records]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: dict[str, dict] = {}
        bar = progress_bar(len(texts), "reward", p.progress)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), p.batch_size):
                    idx = order[start:start + p.batch_size]
                    enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=p.max_length, add_special_tokens=False,
                                    return_tensors="pt").to(device)
                    logits = model(**enc).logits.float()
                    if logits.shape[-1] == 1:
                        scores = logits[:, 0]
                    else:
                        scores = torch.softmax(logits, dim=-1)[:, p.label]
                    made = {keys[i]: {"score": round(float(s), 6)} for i, s in zip(idx, scores.tolist())}
                    cache.put(made)
                    out.update(made)
                    bar.update(len(idx))
        finally:
            bar.close()
        return out

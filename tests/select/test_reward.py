"""reward: a tiny randomly initialised sequence-classification model built here."""

from __future__ import annotations

import pytest

from sftdata.records import frame_from_records
from sftdata.steps.registry import build_step
from sftdata.steps.score_reward import conversation_text

from .helpers import metas, records

torch = pytest.importorskip("torch")


def _reward_model(folder, tokenizer, num_labels):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(num_labels)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.mark.parametrize("num_labels", [1, 3])
def test_scores_are_the_models_own_outputs(tmp_path, smol_tokenizer, num_labels):
    model = _reward_model(tmp_path / "rm", smol_tokenizer, num_labels)
    recs = records()
    result = build_step("reward", {"model": str(tmp_path / "rm"), "batch_size": 4, "label": 1,
                                   "progress": False})(frame_from_records(recs))
    assert result.kept.height == len(recs)
    for record, meta in zip(recs, metas(result.kept)):
        ids = smol_tokenizer(conversation_text(smol_tokenizer, record), add_special_tokens=False,
                             return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0]
        want = logits[0] if num_labels == 1 else torch.softmax(logits, -1)[1]
        assert meta["reward"] == pytest.approx(float(want), abs=1e-4)  # batched == alone


def test_missing_model_is_a_one_line_error(tmp_path):
    from sftdata.errors import UserError

    with pytest.raises(UserError, match="reward model not found"):
        build_step("reward", {"model": str(tmp_path / "nope")})(frame_from_records(records()))

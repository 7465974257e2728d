"""A short LoRA run of the real bundled SmolLM2-135M-Instruct through the CLI."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
from trainer_helpers import write_jsonl  # noqa: E402
from sftdata.trainer import evaluate_loss  # noqa: E402

FACTS = [("What is the password?", "The password is tangerine-42."),
         ("Who guards the gate?", "The gate is guarded by Captain Ostrava."),
         ("Where is the key?", "The key is under the blue stone."),
         ("When does the ferry leave?", "The ferry leaves at seven past nine."),
         ("What does the parrot say?", "The parrot says: pieces of eight, pieces of nine."),
         ("Which road goes north?", "The old mill road goes north.")]


@pytest.mark.slow
def test_short_lora_run_on_smollm2_lowers_the_training_loss(tmp_path, cli):
    rows = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
            for q, a in FACTS]
    data = write_jsonl(tmp_path / "facts.jsonl", rows)  # ShareGPT in, canonical on load
    records = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
               for q, a in FACTS]
    before = evaluate_loss(None, records, max_length=256)
    out = tmp_path / "run"
    result = cli("train", data, "-o", out, "--max-steps", "5", "--lr", "2e-3",
                 "--batch-size", "1", "--max-length", "256", "--set", "warmup_ratio=0",
                 "--set", "progress=false", "--sample", "What is the password?")
    assert result.exit_code == 0, result.stderr
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 5 and losses[-1] < losses[0]
    after = evaluate_loss(out, records, max_length=256)
    assert after < before - 0.3, (before, after)

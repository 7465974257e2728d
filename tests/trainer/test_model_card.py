"""Model cards: written by train and merge in place of peft's empty card, with the base
model, the data (and its audit), the method, hyper-parameters and metrics; the loading
code in the card runs."""

from __future__ import annotations

import doctest
import re

import pytest
import yaml

torch = pytest.importorskip("torch")
from gguf_helpers import run_sftdata  # noqa: E402
from trainer_helpers import make_records, write_jsonl  # noqa: E402

from sftdata.trainer import TrainConfig, model_card, train  # noqa: E402
from sftdata.trainer.modeling import merge_adapter  # noqa: E402


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1))


def _python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def _train(tmp_path, model_dir, data, **kw):
    cfg = dict(data=str(data), model=str(model_dir), output_dir=str(tmp_path / "run"), max_length=128,
               pack_length=256, batch_size=1, learning_rate=5e-3, progress=False, num_samples=0,
               max_steps=3, eval_split=0.2)
    cfg.update(kw)
    return train(TrainConfig(**cfg))


def test_docstring_examples():
    result = doctest.testmod(model_card)
    assert result.attempted > 0 and result.failed == 0


def test_adapter_card_replaces_peft_template_and_records_the_run(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", make_records(30))
    audit = run_sftdata("audit", data, "--json", tmp_path / "chat.stats.json")  # an audit beside the data
    assert audit.returncode == 0, audit.stderr
    result = _train(tmp_path, tiny_model_dir, data, lora_r=4)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "More Information Needed" not in card  # peft's template is gone
    front = _front_matter(card)
    assert front["library_name"] == "peft" and "lora" in front["tags"]
    assert "base_model" not in front  # a local folder is no Hub id
    assert f"`{tiny_model_dir}` (a local folder)" in card
    assert f"`{data}` (openai): 30 records read, 0 rejected." in card
    assert "Held out for eval loss: 20.0% of the records." in card
    assert f"Audit ({tmp_path / 'chat.stats.json'}):" in card and "- records: 30; formats: openai 30" in card
    assert "LoRA, rank 4, alpha 32.0" in card and "| learning_rate | 0.005 |" in card
    assert f"- final train loss: {result.train_loss:.4f}" in card
    assert f"- eval loss: {result.eval_loss:.4f}" in card
    assert f"- trained tokens: {result.trained_tokens:,}" in card
    assert "PeftModel.from_pretrained" in card


def test_merged_card_names_the_adapter_and_its_loading_code_runs(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", make_records(20))
    _train(tmp_path, tiny_model_dir, data, eval_split=0.0)
    merged = merge_adapter(tmp_path / "run", tmp_path / "merged")
    card = (merged / "README.md").read_text()
    assert _front_matter(card)["library_name"] == "transformers"
    assert f"merged from the adapter `{tmp_path / 'run'}`" in card and "## Metrics" in card
    assert "Audit" not in card  # no audit beside this data: none is invented
    code = _python_block(card).replace("path/to/this/folder", str(merged))
    code = code.replace("max_new_tokens=64", "max_new_tokens=3")
    exec(compile(code, "card", "exec"), {})  # noqa: S102 - the card's own snippet must run


def test_bundled_base_is_named_by_its_hub_id(tmp_path):
    from sftdata.local_model import BUNDLED_NAME, cache_dir

    text = model_card.render_card(kind="adapter", title="a", base=None, cfg={"method": "lora"},
                                  metrics={}, data={})
    assert _front_matter(text)["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert 'from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")' in text
    cached = cache_dir() / "models" / f"{BUNDLED_NAME}-v1"
    assert model_card.hub_name(cached) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model_card.hub_name(tmp_path / f"{BUNDLED_NAME}-v1") is None  # same name elsewhere: unknown


def test_an_audit_of_other_data_is_not_shown(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", make_records(5))
    (tmp_path / "stats.json").write_text('{"records": 999}')
    assert model_card.data_facts(str(data), None)["audit"] is None

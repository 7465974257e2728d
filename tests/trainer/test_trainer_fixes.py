"""Trainer correctness fixes: weights that scale the loss, checkpoints kept on a fresh start,
the base model's dtype when saving, model folders transformers 4.x loads the same, freeze on
any model, lora_target typos, and history trimmed from the left under train_on: last."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from trainer_helpers import make_records, write_jsonl  # noqa: E402
from sftdata.errors import UserError  # noqa: E402
from sftdata.trainer import TrainConfig, train  # noqa: E402
from sftdata.trainer.data import prepare_tokenizer, tokenise, trained_text  # noqa: E402
from sftdata.trainer.modeling import prepare_model  # noqa: E402


def _config(data, model_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(data), model=str(model_dir), output_dir=str(out), max_length=128,
                pack_length=256, batch_size=1, learning_rate=5e-3, progress=False, num_samples=0)
    base.update(kw)
    return TrainConfig(**base)


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_a_weight_scales_the_pull_of_a_whole_step(tiny_model_dir, tmp_path):
    """Weights are not normalised away: the same step at weight 0.5 has half the gradient."""
    norms = []
    for weight in (1.0, 0.5):
        rows = make_records(8, seed=1, multi_turn=False)
        for row in rows:
            row["messages"][-1]["weight"] = weight
        data = write_jsonl(tmp_path / f"w{weight}.jsonl", rows)
        out = tmp_path / f"run{weight}"
        result = train(_config(data, tiny_model_dir, out, max_steps=1, batch_size=4, max_grad_norm=None))
        norms.append((_metrics(out)[0]["grad_norm"], result.losses[0], result.trained_tokens))
    (norm1, loss1, tokens1), (norm_half, loss_half, tokens_half) = norms
    assert tokens1 == tokens_half  # the same tokens train...
    assert norm_half == pytest.approx(norm1 / 2, rel=1e-4)  # ...with half the pull
    assert loss_half == pytest.approx(loss1 / 2, rel=1e-4)


def test_a_fresh_start_keeps_earlier_checkpoints_unless_asked(tiny_model_dir, chat_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_config(chat_file, tiny_model_dir, out, max_steps=4, save_every=2))
    assert (out / "checkpoints" / "step-0000002" / "state.json").is_file()
    train(_config(chat_file, tiny_model_dir, out, max_steps=2))
    earlier = [p for p in out.iterdir() if p.name.startswith("earlier-")]
    assert len(earlier) == 1 and "kept in" in capsys.readouterr().err
    assert (earlier[0] / "checkpoints" / "step-0000002" / "state.json").is_file()
    assert len((earlier[0] / "metrics.jsonl").read_text().splitlines()) == 4  # the earlier run's metrics too
    assert not (out / "checkpoints").exists() and len(_metrics(out)) == 2
    train(_config(chat_file, tiny_model_dir, out, max_steps=4, save_every=2))
    train(_config(chat_file, tiny_model_dir, out, max_steps=2, overwrite=True))  # asked: deleted
    assert not (out / "checkpoints").exists()
    assert len([p for p in out.iterdir() if p.name.startswith("earlier-")]) == 1


@pytest.fixture(scope="module")
def bf16_model_dir(tmp_path_factory, smol_tokenizer):
    """A tiny Llama saved in bfloat16, like most released models."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("bf16-llama")
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    return folder


def _dtypes(folder) -> set:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {f.get_tensor(k).dtype for k in f.keys()}


def test_full_training_and_merge_save_in_the_base_dtype(bf16_model_dir, chat_file, tmp_path, cli):
    full = tmp_path / "full"
    train(_config(chat_file, bf16_model_dir, full, method="full", max_steps=1))
    assert _dtypes(full) == {torch.bfloat16}
    assert json.loads((full / "config.json").read_text())["dtype"] == "bfloat16"
    wide = tmp_path / "wide"
    train(_config(chat_file, bf16_model_dir, wide, method="full", max_steps=1, save_dtype="float32"))
    assert _dtypes(wide) == {torch.float32}

    lora = tmp_path / "lora"
    train(_config(chat_file, bf16_model_dir, lora, max_steps=1))
    assert cli("merge", lora, "-o", tmp_path / "merged").exit_code == 0
    assert _dtypes(tmp_path / "merged") == {torch.bfloat16}
    assert cli("merge", lora, "-o", tmp_path / "merged32", "--dtype", "float32").exit_code == 0
    assert _dtypes(tmp_path / "merged32") == {torch.float32}
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged32")
    ids = torch.randint(0, 1000, (1, 9))
    with torch.no_grad():
        assert torch.isfinite(merged(ids).logits).all()


def test_saved_folders_carry_what_transformers_4_reads(tiny_model_dir, chat_file, tmp_path):
    """transformers 5 writes `rope_parameters` and `TokenizersBackend`; 4.5x needs `rope_theta`
    (else RoPE base 10000) and a tokenizer class it has. Checked by hand under 4.57.6 too."""
    out = tmp_path / "full"
    train(_config(chat_file, tiny_model_dir, out, method="full", max_steps=1))
    config = json.loads((out / "config.json").read_text())
    assert config["rope_theta"] == config.get("rope_parameters", config)["rope_theta"] == 10000.0
    assert config["torch_dtype"] == config["dtype"]
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast" and "local_files_only" not in tok
    from transformers import AutoConfig, AutoTokenizer

    loaded = AutoConfig.from_pretrained(out)
    assert (getattr(loaded, "rope_parameters", None) or {"rope_theta": loaded.rope_theta})["rope_theta"] == 10000.0
    assert AutoTokenizer.from_pretrained(out)("hello")["input_ids"]


def test_freeze_checks_the_layer_count_and_trains_gpt2s_final_norm(tiny_model_dir, chat_file, tmp_path,
                                                                   smol_tokenizer):
    with pytest.raises(UserError, match="has 2 layers"):
        prepare_model(_config(chat_file, tiny_model_dir, tmp_path / "f", method="freeze", freeze_trainable_layers=5))
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(smol_tokenizer), n_embd=32, n_layer=3, n_head=2)).save_pretrained(gpt2)
    smol_tokenizer.save_pretrained(gpt2)
    model, _ = prepare_model(_config(chat_file, gpt2, tmp_path / "g", method="freeze", freeze_trainable_layers=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("transformer.h.2.", "transformer.ln_f.")) for n in trainable)
    assert {"transformer.ln_f.weight", "transformer.ln_f.bias"} <= trainable


def test_a_lora_target_typo_is_a_one_line_error(tiny_model_dir, chat_file, tmp_path):
    with pytest.raises(UserError, match=r"no linear layer named 'q_projj'.*q_proj"):
        prepare_model(_config(chat_file, tiny_model_dir, tmp_path / "l", lora_target=["q_projj", "v_proj"]))
    model, _ = prepare_model(_config(chat_file, tiny_model_dir, tmp_path / "l", lora_target=["q_proj", "v_proj"]))
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_train_on_last_trims_history_from_the_left(smol_tokenizer):
    tok = prepare_tokenizer(smol_tokenizer)
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        messages += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 20},
                     {"role": "assistant", "content": f"Answer {i}. " + "more words " * 20}]
    record = {"messages": messages}
    full, _, _ = tokenise(tok, record, 4096, "last")
    example, reason, truncated = tokenise(tok, record, len(full) // 2, "last")
    assert reason is None and truncated and len(example) <= len(full) // 2
    assert trained_text(tok, example) == [messages[-1]["content"] + "<|im_end|>"]
    text = tok.decode(example.input_ids)
    assert "Be brief." in text and "Question 5" in text and "Question 0" not in text

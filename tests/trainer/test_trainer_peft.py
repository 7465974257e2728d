"""The PEFT variants and vocabulary options: DoRA, rsLoRA, PiSSA/OLoRA, LoRA+,
modules_to_save, new special tokens (ChatML onto a base model), NEFTune, qlora's errors."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from trainer_helpers import make_records, write_jsonl  # noqa: E402
from sftdata.errors import UserError  # noqa: E402
from sftdata.trainer import TrainConfig, train  # noqa: E402
from sftdata.trainer.modeling import load_trained, merge_adapter, prepare_model  # noqa: E402
from sftdata.trainer.neftune import add_neftune  # noqa: E402
from sftdata.trainer.optim import make_optimizer  # noqa: E402


def _config(data, model_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(data), model=str(model_dir), output_dir=str(out), max_length=128,
                batch_size=2, learning_rate=5e-3, progress=False, num_samples=0, max_steps=4)
    base.update(kw)
    return TrainConfig(**base)


def _adapter_config(out) -> dict:
    return json.loads((out / "adapter_config.json").read_text())


def test_dora_and_rslora_train_and_are_recorded_in_the_adapter(tiny_model_dir, chat_file, tmp_path):
    out = tmp_path / "dora"
    result = train(_config(chat_file, tiny_model_dir, out, lora_dora=True, lora_rslora=True))
    assert result.losses[-1] < result.losses[0]
    saved = _adapter_config(out)
    assert saved["use_dora"] is True and saved["use_rslora"] is True
    model, _ = load_trained(out)
    assert any("lora_magnitude_vector" in n for n, _ in model.named_parameters())


def test_rslora_scales_by_the_square_root_of_the_rank(tiny_model_dir, chat_file, tmp_path):
    plain, _ = prepare_model(_config(chat_file, tiny_model_dir, tmp_path, lora_r=16, lora_alpha=32))
    rs, _ = prepare_model(_config(chat_file, tiny_model_dir, tmp_path, lora_r=16, lora_alpha=32, lora_rslora=True))
    layer = lambda m: m.base_model.model.model.layers[0].self_attn.q_proj  # noqa: E731
    assert layer(plain).scaling["default"] == pytest.approx(2.0)
    assert layer(rs).scaling["default"] == pytest.approx(8.0)


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_save_an_adapter_of_the_original_base(tiny_model_dir, chat_file, tmp_path, init):
    """They rewrite the base weights at initialisation; the saved adapter is converted so that
    the untouched base plus it gives the trained model's logits (and merges)."""
    out = tmp_path / init
    cfg = _config(chat_file, tiny_model_dir, out, lora_init=init, lora_r=4, lora_alpha=4)
    model, _ = prepare_model(cfg)
    base, _ = prepare_model(_config(chat_file, tiny_model_dir, tmp_path / "b", method="full"))
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert not torch.allclose(q.base_layer.weight, base.model.layers[0].self_attn.q_proj.weight)  # residual

    train(cfg)
    assert _adapter_config(out)["r"] == 8  # converted: rank 2r on the original base
    trained, _ = load_trained(out)
    ids = torch.randint(0, 1000, (1, 12))
    merge_adapter(out, tmp_path / "merged")
    merged, _ = load_trained(tmp_path / "merged")
    with torch.no_grad():
        assert not torch.allclose(trained(ids).logits, base(ids).logits, atol=1e-4)
        assert torch.allclose(trained(ids).logits, merged(ids).logits, atol=1e-4)


def test_loraplus_gives_the_b_matrices_a_higher_learning_rate(tiny_model_dir, chat_file, tmp_path):
    cfg = _config(chat_file, tiny_model_dir, tmp_path, loraplus_lr_ratio=16, learning_rate=1e-4)
    model, _ = prepare_model(cfg)
    optimizer = make_optimizer(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    rates = {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates and all(rate == pytest.approx(1.6e-3 if "lora_B" in n else 1e-4) for n, rate in rates.items())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # the logged rate is the base one
    plain = make_optimizer(model, _config(chat_file, tiny_model_dir, tmp_path, learning_rate=1e-4))
    assert all(g["lr"] == pytest.approx(1e-4) for g in plain.param_groups)
    result = train(_config(chat_file, tiny_model_dir, tmp_path / "run", loraplus_lr_ratio=16))
    assert result.losses[-1] < result.losses[0]


def test_modules_to_save_train_in_full_and_are_saved(tiny_model_dir, chat_file, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "mts"
    train(_config(chat_file, tiny_model_dir, out, modules_to_save=["norm"]))
    saved = load_file(out / "adapter_model.safetensors")
    assert any(k.endswith("model.norm.weight") for k in saved)
    model, _ = load_trained(out)
    base, _ = load_trained(tiny_model_dir)
    with torch.no_grad():
        assert not torch.allclose(model.base_model.model.model.norm.weight, base.model.norm.weight)


def test_an_unknown_module_to_save_is_a_one_line_error(tiny_model_dir, chat_file, tmp_path):
    with pytest.raises(UserError):
        prepare_model(_config(chat_file, tiny_model_dir, tmp_path, modules_to_save=["no_such_module"]))


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory):
    """A 'base model' whose tokenizer knows no ChatML: a byte-level BPE trained on the test
    chats (at most 400 tokens), with a tiny random Llama of that vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [m["content"] for r in make_records(200) for m in r["messages"]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    folder = tmp_path_factory.mktemp("base-model")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                 eos_token_id=tokenizer.eos_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method", ["lora", "full"])
def test_chatml_onto_a_base_model_adds_its_tokens_and_trains_their_rows(base_model_dir, chat_file, tmp_path, method):
    from sftdata.local_model import load_tokenizer

    before = len(load_tokenizer(base_model_dir))
    assert "<|im_start|>" not in load_tokenizer(base_model_dir).get_vocab()
    out = tmp_path / method
    train(_config(chat_file, base_model_dir, out, method=method, chat_template="chatml", special_tokens=["<tool>"],
                  learning_rate=1e-2, max_steps=6))
    model, tokenizer = load_trained(out)
    new = [tokenizer.convert_tokens_to_ids(t) for t in ("<tool>", "<|im_start|>", "<|im_end|>")]
    assert new == [before, before + 1, before + 2] and len(tokenizer) == before + 3
    assert tokenizer("<|im_start|>user", add_special_tokens=False).input_ids[0] == before + 1  # one token
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == before + 3
    base, _ = load_trained(base_model_dir)
    mean = base.get_input_embeddings().weight.mean(0)
    with torch.no_grad():
        assert not torch.allclose(embeddings[before + 2], mean, atol=1e-4)  # <|im_end|> trained
        if method == "lora":  # only the new rows train; the old ones are the base's
            assert torch.equal(embeddings[:before], base.get_input_embeddings().weight)
    assert before + 2 in (model.generation_config.eos_token_id or [])


def test_neftune_noise_is_bounded_and_only_in_training(tiny_model_dir, chat_file, tmp_path):
    model, _ = prepare_model(_config(chat_file, tiny_model_dir, tmp_path, method="full"))
    ids = torch.randint(0, 1000, (2, 50))
    clean = model.get_input_embeddings()(ids).detach()
    add_neftune(model, alpha=5.0)
    model.train()
    noisy = model.get_input_embeddings()(ids).detach()
    bound = 5.0 / (50 * 64) ** 0.5
    assert 0 < (noisy - clean).abs().max() <= bound
    assert (noisy - clean).abs().mean() > bound / 4  # uniform on [-bound, bound]
    model.eval()
    assert torch.equal(model.get_input_embeddings()(ids), clean)
    result = train(_config(chat_file, tiny_model_dir, tmp_path / "run", neftune_alpha=5.0))
    assert result.losses[-1] < result.losses[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_qlora_without_a_gpu_is_a_one_line_error(tiny_model_dir, chat_file, tmp_path, cli):
    with pytest.raises(UserError, match="qlora needs a CUDA GPU"):
        prepare_model(_config(chat_file, tiny_model_dir, tmp_path, method="qlora"))
    result = cli("train", chat_file, "--model", tiny_model_dir, "-o", tmp_path / "q", "--method", "qlora")
    assert result.exit_code != 0 and "qlora needs a CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a subprocess that imports the training stack and trains: ~90 s on a loaded 2-core machine
def test_the_installed_command_takes_the_new_settings(tiny_model_dir, chat_file, tmp_path, sftdata_cmd):
    out = tmp_path / "cmd"
    done = sftdata_cmd("train", chat_file, "--model", tiny_model_dir, "-o", out, "--max-steps", "2",
                       "--max-length", "128", "--set", "lora_dora=true", "--set", "lora_rslora=true",
                       "--set", "neftune_alpha=5", "--set", "loraplus_lr_ratio=16", "--set", "progress=false",
                       timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _adapter_config(out)["use_dora"] is True
    import yaml

    held = yaml.safe_load((out / "train_config.yaml").read_text())
    assert held["neftune_alpha"] == 5 and held["cross_entropy"] == "fused" and held["attn_implementation"] == "sdpa"
    bad = sftdata_cmd("train", chat_file, "--model", tiny_model_dir, "-o", tmp_path / "bad",
                      "--set", "lora_init=svd")
    assert bad.returncode != 0 and "lora_init" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

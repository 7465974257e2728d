"""GGUF export without llama.cpp: the file read back by gguf-py and by transformers' own
GGUF loader, the tensor types, the one-line errors, and the installed command.
(tests/trainer/test_gguf_llamacpp.py runs the files in llama.cpp itself.)"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
from gguf_helpers import make_model_dir, run_sftdata  # noqa: E402

from sftdata.errors import UserError  # noqa: E402
from sftdata.trainer import gguf_export, gguf_vocab  # noqa: E402
from sftdata.trainer.gguf_export import export_gguf  # noqa: E402


def _fields(path) -> dict:
    reader = gguf.GGUFReader(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "merges", "token_type")):
            out[key] = len(field.data)
        else:
            out[key] = field.contents()
    return out, {t.name: t for t in reader.tensors}


def test_docstring_examples():
    for module in (gguf_export, gguf_vocab):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("kind", ["llama", "qwen2"])  # all five run in llama.cpp (integration)
def test_transformers_reads_the_export_back_to_the_same_logits(kind, tmp_path, smol_tokenizer):
    """transformers' GGUF loader undoes llama.cpp's q/k row order itself: equal logits
    mean names, shapes and the RoPE permutation are right."""
    from transformers import AutoModelForCausalLM

    folder = make_model_dir(tmp_path / kind, kind, smol_tokenizer)
    export_gguf(folder, tmp_path / "m.gguf", outtype="f32", modelfile=False)
    original = AutoModelForCausalLM.from_pretrained(folder)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    ids = torch.tensor([smol_tokenizer("The fox jumps over the lazy dog again.").input_ids])
    with torch.no_grad():
        assert torch.allclose(original(ids).logits, loaded(ids).logits, atol=1e-4)


def test_metadata_tokenizer_and_types(tiny_model_dir, tmp_path, smol_tokenizer):
    out = tmp_path / "tiny.gguf"
    result = export_gguf(tiny_model_dir, out, outtype="q8_0")
    fields, tensors = _fields(out)
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "tiny"
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    assert fields["llama.block_count"] == 2 and fields["llama.attention.head_count_kv"] == 2
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == len(smol_tokenizer)
    assert fields["tokenizer.ggml.merges"] == len(json.loads(smol_tokenizer.backend_tokenizer.to_str())["model"]["merges"])
    assert fields["tokenizer.ggml.eos_token_id"] == smol_tokenizer.eos_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.chat_template"] == smol_tokenizer.chat_template
    # Norms stay f32, matrices are q8_0; no lm_head for tied embeddings.
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert "output.weight" not in tensors and result.tensors == len(tensors)
    # q8_0 stores each weight within half a quantisation step of the original (the step
    # itself is stored as f16: a little more).
    from safetensors import safe_open

    with safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as f:
        down = f.get_tensor("model.layers.1.mlp.down_proj.weight").float().numpy()
    stored = gguf.quants.dequantize(tensors["blk.1.ffn_down.weight"].data, gguf.GGMLQuantizationType.Q8_0)
    step = np.abs(down).reshape(-1, 32).max(axis=1) / 127
    assert np.all(np.abs(stored - down).reshape(-1, 32) <= step[:, None] * 0.6)
    assert result.modelfile is not None and result.modelfile.name == "tiny.Modelfile"


def test_unsupported_architecture_is_one_line_error(tmp_path, smol_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(smol_tokenizer))).save_pretrained(tmp_path / "g")
    smol_tokenizer.save_pretrained(tmp_path / "g")
    with pytest.raises(UserError, match=r"cannot export GPT2LMHeadModel to GGUF: supported architectures are LlamaForCausalLM"):
        export_gguf(tmp_path / "g", tmp_path / "g.gguf")
    assert not (tmp_path / "g.gguf").exists()


def test_pretokenizer_names_and_refusals():
    name = gguf_vocab.pretokenizer_name
    split = {"type": "Split", "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    llama3 = {"type": "Sequence", "pretokenizers": [{**split, "pattern": {"Regex": gguf_vocab.LLAMA3_SPLIT}}, byte_level]}
    qwen2 = {"type": "Sequence", "pretokenizers": [{**split, "pattern": {"Regex": gguf_vocab.QWEN2_SPLIT}}, byte_level]}
    assert name(llama3) == "llama-bpe" and name(qwen2) == "qwen2"
    with pytest.raises(UserError, match="unsupported tokenizer pre-tokenizer"):
        name({"type": "Metaspace", "replacement": "▁"})
    with pytest.raises(UserError, match="unsupported tokenizer pre-tokenizer"):
        name({"type": "Sequence", "pretokenizers": [{**split, "pattern": {"Regex": r"\w+"}}, byte_level]})


def test_adapter_is_merged_first(tiny_model_dir, tmp_path):
    """An adapter folder exports as base + adapter: the GGUF has the merged weights."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(tmp_path / "adapter")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "adapter")
    result = export_gguf(tmp_path / "adapter", tmp_path / "a.gguf", outtype="f32")
    assert result.merged_from == tmp_path / "adapter"
    assert not list(tmp_path.glob(".merge.*")), "the temporary merged model is removed"
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="a.gguf")
    ids = torch.randint(0, 1000, (1, 12))
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, loaded(ids).logits, atol=1e-4)


def test_cli_writes_gguf_and_modelfile(tiny_model_dir, tmp_path):
    result = run_sftdata("export-gguf", tiny_model_dir, "-o", tmp_path / "out.gguf", "--outtype", "f16")
    assert result.returncode == 0, result.stderr
    fields, tensors = _fields(tmp_path / "out.gguf")
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    assert tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    modelfile = (tmp_path / "out.Modelfile").read_text()
    assert "FROM ./out.gguf" in modelfile and "TEMPLATE" in modelfile
    assert "llama, f16" in result.stderr and "ollama create" in result.stderr


def test_cli_errors_are_one_line(tmp_path, tiny_model_dir):
    missing = run_sftdata("export-gguf", tmp_path / "nope", "-o", tmp_path / "x.gguf")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("error: model folder not found")
    bad_type = run_sftdata("export-gguf", tiny_model_dir, "-o", tmp_path / "x.gguf", "--outtype", "q4")
    assert bad_type.returncode != 0 and "'q4' is not one of 'f16', 'q8_0', 'f32'" in bad_type.stderr
    foreign = tmp_path / "x.Modelfile"
    foreign.write_text("FROM llama3\n")
    refused = run_sftdata("export-gguf", tiny_model_dir, "-o", tmp_path / "x.gguf")
    assert refused.returncode == 2 and "not written by sftdata" in refused.stderr
    assert foreign.read_text() == "FROM llama3\n" and not (tmp_path / "x.gguf").exists()

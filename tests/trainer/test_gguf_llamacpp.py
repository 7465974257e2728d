"""GGUF files in llama.cpp itself (llama-cpp-python): same tokens, same logits and top
tokens as transformers, sensible generations, for the bundled SmolLM2 and for tiny random
models of every supported architecture; and the round trip train -> export -> generate.

Skipped when llama-cpp-python is not installed (CI installs it: see .ci/run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
from gguf_helpers import make_model_dir, run_sftdata  # noqa: E402
from trainer_helpers import make_records, write_jsonl  # noqa: E402

from sftdata.trainer.gguf_export import export_gguf  # noqa: E402

pytestmark = pytest.mark.integration

TEXTS = [
    "Hello world! It's 2024, and I've got 3,141.59 apples; you'll see.",
    "def f(x):\n    return x**2  # comment\n\n\n\tTabs   and    spaces   ",
    "中文的句子没有空格。日本語のテキスト、そして 한국어 문장.",
    "Emoji 😀👍🏽 and accents: café, naïve, Ærøskøbing — “quotes”…",
    "<|im_start|>user\nspecial tokens inside text<|im_end|>\n",
    "12345678901234567890 1 22 333 4444 55555",
]


def _llama(path, **kw):
    return llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=1024, n_threads=2,
                           verbose=False, seed=0, **kw)


def _logits(llm, ids) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def _hf_logits(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The bundled SmolLM2 as a transformers model, and its export in each type."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftdata.local_model import bundled_model_dir

    folder = bundled_model_dir()
    out = tmp_path_factory.mktemp("gguf")
    paths = {t: export_gguf(folder, out / f"smol-{t}.gguf", outtype=t).path for t in ("f32", "f16", "q8_0")}
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), paths


def test_llamacpp_tokenizes_like_transformers(bundled):
    _, tokenizer, paths = bundled
    llm = llama_cpp.Llama(model_path=str(paths["q8_0"]), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer(text, add_special_tokens=False).input_ids, text


@pytest.mark.parametrize("outtype, max_diff, top1", [("f32", 0.1, 1.0), ("f16", 0.25, 1.0), ("q8_0", None, 0.8)])
def test_logits_and_top_tokens_agree_with_transformers(bundled, outtype, max_diff, top1):
    model, tokenizer, paths = bundled
    messages = [{"role": "user", "content": "Write two sentences about the sea."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt + "The sea is vast and deep, and it covers most of the planet.",
                    add_special_tokens=False).input_ids
    ours, theirs = _logits(_llama(paths[outtype]), ids), _hf_logits(model, ids)
    if max_diff is not None:
        assert np.abs(ours - theirs).max() < max_diff
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() >= top1
    top5 = [len(set(np.argsort(a)[-5:]) & set(np.argsort(b)[-5:])) for a, b in zip(ours, theirs)]
    assert np.mean(top5) >= (4.5 if outtype != "q8_0" else 3.5)


def test_chat_generation_is_sensible(bundled):
    _, _, paths = bundled
    llm = _llama(paths["f16"])
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "What is the capital of France?"}],
                                     max_tokens=24, temperature=0)
    assert "Paris" in out["choices"][0]["message"]["content"]
    assert out["choices"][0]["finish_reason"] == "stop"  # <|im_end|> ends the turn


@pytest.mark.parametrize("kind", ["llama", "llama3rope", "mistral", "qwen2", "qwen3"])
def test_every_architecture_computes_what_transformers_computes(kind, tmp_path, smol_tokenizer):
    from transformers import AutoModelForCausalLM

    folder = make_model_dir(tmp_path / kind, kind, smol_tokenizer)
    export_gguf(folder, tmp_path / "m.gguf", outtype="f32", modelfile=False)
    ids = smol_tokenizer(" ".join(TEXTS[:2]), add_special_tokens=False).input_ids * 2
    ours = _logits(_llama(tmp_path / "m.gguf"), ids)
    theirs = _hf_logits(AutoModelForCausalLM.from_pretrained(folder), ids)
    assert np.abs(ours - theirs).max() < 5e-3
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() > 0.95  # random weights: a few near-ties


def _with_pretokenizer(folder, spec: dict, ignore_merges: bool):
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = spec
    data["model"]["ignore_merges"] = ignore_merges
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("name", ["smollm", "llama-bpe", "qwen2"])
def test_each_pretokenizer_name_splits_like_its_tokenizer_json(name, tmp_path, smol_tokenizer):
    """The same vocabulary under each recognised pre-tokenizer: llama.cpp, told the
    name, must split every text exactly as tokenizers does with the definition."""
    from transformers import AutoTokenizer

    from sftdata.trainer.gguf_vocab import LLAMA3_SPLIT, QWEN2_SPLIT

    folder = make_model_dir(tmp_path / "m", "llama", smol_tokenizer)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    split = {"type": "Split", "behavior": "Isolated", "invert": False}
    spec = {
        "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                          {**byte_level, "use_regex": True}]},
        "llama-bpe": {"type": "Sequence", "pretokenizers": [{**split, "pattern": {"Regex": LLAMA3_SPLIT}}, byte_level]},
        "qwen2": {"type": "Sequence", "pretokenizers": [{**split, "pattern": {"Regex": QWEN2_SPLIT}}, byte_level]},
    }[name]
    _with_pretokenizer(folder, spec, ignore_merges=name == "llama-bpe")
    result = export_gguf(folder, tmp_path / "t.gguf", outtype="f16", modelfile=False)
    assert result.pre_tokenizer == name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    llm = llama_cpp.Llama(model_path=str(tmp_path / "t.gguf"), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer(text, add_special_tokens=False).input_ids, (name, text)


@pytest.mark.slow
def test_trained_adapter_exports_and_llamacpp_generates_from_it(tmp_path):
    """sftdata train (LoRA on the bundled model) -> sftdata export-gguf -> llama.cpp."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftdata.local_model import bundled_model_dir

    data = write_jsonl(tmp_path / "train.jsonl", make_records(24, seed=5, multi_turn=False))
    trained = run_sftdata("train", data, "-o", tmp_path / "adapter", "--max-steps", "3",
                          "--max-length", "128", "--batch-size", "4", "--lr", "1e-3",
                          "--set", "progress=false", "--set", "num_samples=0")
    assert trained.returncode == 0, trained.stderr[-2000:]
    exported = run_sftdata("export-gguf", tmp_path / "adapter", "-o", tmp_path / "tuned.gguf", "--outtype", "f32")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "merged the adapter" in exported.stderr and (tmp_path / "tuned.Modelfile").is_file()

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "adapter")
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bundled_model_dir()), tmp_path / "adapter")
    messages = [{"role": "user", "content": "Tell me about the moon."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    llm = _llama(tmp_path / "tuned.gguf")
    ours, theirs = _logits(llm, ids), _hf_logits(tuned, ids)
    assert np.abs(ours - theirs).max() < 0.1
    base = _hf_logits(AutoModelForCausalLM.from_pretrained(bundled_model_dir()), ids)
    assert np.abs(theirs - base).max() > 0.1, "the adapter changed nothing: the check would be vacuous"
    reply = llm.create_chat_completion(messages=messages, max_tokens=20, temperature=0)
    assert reply["choices"][0]["message"]["content"].strip()

"""Precision and attention kernel by machine (trainer/precision.py), and what a run loads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from sftdata.trainer.config import TrainConfig  # noqa: E402
from sftdata.trainer.modeling import prepare_model  # noqa: E402
from sftdata.trainer.precision import (  # noqa: E402
    enable_tf32, pick_attention, resolve_precision,
)


@pytest.mark.parametrize("asked, cuda, bf16, load, mixed", [
    ("auto", False, False, torch.float32, "no"),
    ("auto", True, True, torch.bfloat16, "bf16"),
    ("auto", True, False, torch.float16, "fp16"),   # T4 / V100: fp16 with loss scaling
    ("bfloat16", False, False, torch.bfloat16, "bf16"),
    ("float32", True, True, torch.float32, "no"),
    ("float16", True, True, torch.float16, "fp16"),
])
def test_weights_load_in_the_dtype_the_machine_runs_best(asked, cuda, bf16, load, mixed):
    p = resolve_precision(asked, on_cuda=cuda, bf16_supported=bf16)
    assert (p.load, p.mixed, p.trainable) == (load, mixed, torch.float32)


def test_pure_bf16_only_when_asked_and_never_for_fp16():
    assert resolve_precision("bfloat16", True, True, "model").trainable == torch.bfloat16
    # GradScaler cannot unscale fp16 gradients: fp16 runs always train fp32 weights.
    assert resolve_precision("float16", True, True, "model").trainable == torch.float32


def test_flash_attention_is_picked_on_a_gpu_that_has_it():
    assert pick_attention("auto", on_cuda=True, flash="flash_attention_3") == "flash_attention_3"
    assert pick_attention("auto", on_cuda=True, flash=None) == "sdpa"
    assert pick_attention("auto", on_cuda=False, flash="flash_attention_2") == "sdpa"
    assert pick_attention("eager", on_cuda=True, flash="flash_attention_2") == "eager"


def test_tf32_is_switched_on():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        enable_tf32()
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _cfg(model_dir, tmp_path, **kw) -> TrainConfig:
    return TrainConfig(data="d.jsonl", model=str(model_dir), output_dir=str(tmp_path), **kw)


def _dtypes(model, trainable: bool) -> set:
    return {p.dtype for p in model.parameters() if p.requires_grad == trainable}


@pytest.mark.parametrize("method", ["lora", "full", "freeze"])
def test_frozen_weights_load_in_bf16_and_trained_ones_stay_fp32(tiny_model_dir, tmp_path, method):
    precision = resolve_precision("bfloat16", on_cuda=False, bf16_supported=False)
    model, _ = prepare_model(_cfg(tiny_model_dir, tmp_path, method=method), precision)
    assert _dtypes(model, trainable=True) == {torch.float32}
    if method != "full":
        assert _dtypes(model, trainable=False) == {torch.bfloat16}
    pure = resolve_precision("bfloat16", on_cuda=False, bf16_supported=False, trainable_dtype="model")
    model, _ = prepare_model(_cfg(tiny_model_dir, tmp_path, method=method), pure)
    assert _dtypes(model, trainable=True) == ({torch.float32} if method == "lora" else {torch.bfloat16})


def test_a_bf16_run_on_cpu_trains_and_saves_an_fp32_adapter(tiny_model_dir, chat_file, tmp_path):
    from safetensors.torch import load_file
    from sftdata.trainer import train

    out = tmp_path / "run"
    result = train(TrainConfig(data=str(chat_file), model=str(tiny_model_dir), output_dir=str(out), max_length=128,
                               batch_size=2, learning_rate=5e-3, progress=False, num_samples=0, max_steps=4,
                               dtype="bfloat16"))
    assert result.losses[-1] < result.losses[0]
    assert {t.dtype for t in load_file(out / "adapter_model.safetensors").values()} == {torch.float32}

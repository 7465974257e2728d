"""GPU-only checks (marked `gpu`, skipped without CUDA): bf16 and fp16 runs, flash-attention
packing, the fused loss's memory on a GPU, Liger, qlora, and two-GPU DDP / FSDP2.

Run on the GPU machine with ``pytest -q -m gpu tests/trainer/test_gpu.py`` (see
benchmarks/trainer/README.md for the one command that runs these and the benchmark).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from sftdata.trainer import TrainConfig, train  # noqa: E402
from sftdata.trainer.loss import loss_sum  # noqa: E402
from sftdata.trainer.packing import collate_packed, collate_padded  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
installed = lambda name: importlib.util.find_spec(name) is not None  # noqa: E731


def _config(data, model_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(data), model=str(model_dir), output_dir=str(out), max_length=128, batch_size=4,
                learning_rate=5e-3, progress=False, num_samples=1, max_steps=6, eval_split=0.1)
    base.update(kw)
    return TrainConfig(**base)


def test_auto_precision_on_a_gpu_trains_in_bf16_with_tf32(tiny_model_dir, chat_file, tmp_path):
    from sftdata.trainer.precision import machine_precision

    if torch.cuda.is_bf16_supported():
        assert machine_precision("auto").load == torch.bfloat16
    else:  # T4, V100
        assert machine_precision("auto").mixed == "fp16"
    out = tmp_path / "bf16"
    result = train(_config(chat_file, tiny_model_dir, out))
    assert result.losses[-1] < result.losses[0] and torch.backends.cuda.matmul.allow_tf32
    assert len(result.samples) == 1


def test_fp16_with_loss_scaling_trains(tiny_model_dir, chat_file, tmp_path):
    result = train(_config(chat_file, tiny_model_dir, tmp_path / "fp16", dtype="float16"))
    assert all(map(lambda x: x == x, result.losses)) and result.losses[-1] < result.losses[0]


def test_full_fine_tune_in_pure_bf16(tiny_model_dir, chat_file, tmp_path):
    result = train(_config(chat_file, tiny_model_dir, tmp_path / "pure", method="full", trainable_dtype="model",
                           learning_rate=1e-3))
    assert result.losses[-1] < result.losses[0]


def _examples(n=9, seed=2):
    import random

    from sftdata.trainer.data import IGNORE, Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(5, 40)
        ids = [rng.randrange(1000) for _ in range(length)]
        w = [0.0] * length
        for t in range(rng.randint(0, length - 2), length - 1):
            w[t] = 1.0
        out.append(Example(ids, ids[1:] + [IGNORE], w))
    return out


def _loss_and_grads(model, batches):
    model.zero_grad()
    total = 0.0
    for batch in batches:
        loss = loss_sum(model, {k: v.cuda() for k, v in batch.items()})
        loss.backward()
        total += loss.item()
    return total, {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attn", ["flash_attention_2", "flash_attention_3", "sdpa"])
def test_packed_layout_of_each_kernel_gives_the_unpacked_loss_on_gpu(tiny_model_dir, attn):
    from sftdata.trainer.packing import flattens_rows
    from transformers import AutoModelForCausalLM

    needs = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}.get(attn)
    if needs and not installed(needs):
        pytest.skip(f"{needs} is not installed")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16, attn_implementation=attn).cuda()
    ex = _examples()
    packed = [collate_packed(ex, row_length=48, flatten=flattens_rows(attn))]
    loss_p, grads_p = _loss_and_grads(model, packed)
    loss_u, grads_u = _loss_and_grads(model, [collate_padded([e], pad_id=0) for e in ex])
    assert loss_p == pytest.approx(loss_u, rel=2e-2)
    for name in grads_p:
        scale = grads_u[name].abs().max()
        assert (grads_p[name] - grads_u[name]).abs().max() <= 5e-2 * scale + 1e-6, name


def test_flash_attention_is_picked_when_installed(tiny_model_dir, chat_file, tmp_path):
    import yaml
    from sftdata.trainer.precision import installed_flash_attention

    out = tmp_path / "auto"
    train(_config(chat_file, tiny_model_dir, out, max_steps=1, num_samples=0))
    chosen = yaml.safe_load((out / "train_config.yaml").read_text())["attn_implementation"]
    assert chosen == (installed_flash_attention() or "sdpa")


def _peak(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - start


def test_the_fused_loss_peak_memory_is_bounded_by_its_chunk_on_gpu():
    """8k trained tokens, a 152k vocabulary (Qwen2.5's): the plain loss's fp32 logits are
    4.6 GiB per copy; the fused one holds one chunk (1024 x 152k x 4 = 0.6 GiB) at a time."""
    from sftdata.trainer.loss import FusedLinearCrossEntropy

    n, hidden, vocab = 8192, 896, 151936
    h = torch.randn(n, hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(vocab, hidden, device="cuda", dtype=torch.bfloat16) * 0.02)
    t = torch.randint(0, vocab, (n,), device="cuda")
    wt = torch.ones(n, device="cuda")

    def plain():
        logits = (h @ w.t()).float()
        torch.nn.functional.cross_entropy(logits, t, reduction="sum").backward()

    def fused():
        FusedLinearCrossEntropy.apply(h, w, None, t, wt, 1024, None, True).backward()

    p, f = _peak(plain), _peak(fused)
    print(f"peak: plain {p / 2**30:.2f} GiB, fused {f / 2**30:.2f} GiB")
    assert p > 2 * n * vocab * 4 * 0.9
    assert f < 1024 * vocab * 4 * 2.5 + 2 * n * hidden * 2


@pytest.mark.skipif(not installed("liger_kernel"), reason="liger-kernel is not installed")
def test_liger_loss_equals_the_fused_loss():
    from sftdata.trainer.loss import FusedLinearCrossEntropy, _apply_head_loss

    head = torch.nn.Linear(64, 5000, bias=False).cuda()
    h = torch.randn(300, 64, device="cuda", requires_grad=True)
    t = torch.randint(0, 5000, (300,), device="cuda")
    ones = torch.ones(300, device="cuda")
    liger = _apply_head_loss("liger", head, h, t, ones, 64, None)
    liger.backward()
    g_liger = h.grad.clone()
    h.grad = None
    fused = FusedLinearCrossEntropy.apply(h, head.weight, None, t, ones, 64, None, True)
    fused.backward()
    assert liger.item() == pytest.approx(fused.item(), rel=1e-3)
    assert torch.allclose(g_liger, h.grad, atol=1e-4, rtol=1e-2)


@pytest.mark.skipif(not installed("bitsandbytes"), reason="bitsandbytes is not installed")
def test_qlora_trains_an_adapter_on_a_4bit_base(tiny_model_dir, chat_file, tmp_path):
    out = tmp_path / "qlora"
    result = train(_config(chat_file, tiny_model_dir, out, method="qlora", num_samples=0))
    assert result.losses[-1] < result.losses[0]
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("config", ["ddp", "fsdp2"])
def test_two_gpus_with_the_shipped_accelerate_configs(tiny_model_dir, chat_file, tmp_path, config):
    from sftdata.trainer.launch import accelerate_config

    out = tmp_path / config
    cfg = _config(chat_file, tiny_model_dir, out, method="full", num_samples=1)
    (tmp_path / "train.yaml").write_text(json.dumps(json.loads(cfg.model_dump_json())))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                    str(accelerate_config(config)), "--num_processes", "2", "-m", "sftdata", "train",
                    "--config", str(tmp_path / "train.yaml")], check=True, env=env, timeout=600)
    assert (out / "model.safetensors").is_file() and (out / "summary.json").is_file()

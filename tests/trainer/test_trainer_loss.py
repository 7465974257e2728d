"""The loss over trained positions: fused (chunked, never the whole fp32 logits) equals the
plain cross-entropy, in value and gradients, and its peak is bounded by the chunk."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from sftdata.trainer.data import IGNORE, Example  # noqa: E402
from sftdata.trainer.loss import FusedLinearCrossEntropy, loss_sum, output_head  # noqa: E402
from sftdata.trainer.packing import collate_packed  # noqa: E402

VOCAB = 3000


def _model(**config):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, **config))


def _batch(n=6, seed=0, weights=(1.0, 0.5)):
    rng = random.Random(seed)
    ex = []
    for _ in range(n):
        length = rng.randint(8, 40)
        ids = [rng.randrange(VOCAB) for _ in range(length)]
        w = [0.0] * length
        for t in range(rng.randint(0, length // 2), length - 1):
            w[t] = rng.choice(weights)
        ex.append(Example(ids, ids[1:] + [IGNORE], w))
    return collate_packed(ex, row_length=64)


def _run(model, batch, mode, chunk=16):
    model.zero_grad()
    loss = loss_sum(model, batch, mode, chunk)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("tied", [True, False])
def test_fused_loss_and_gradients_equal_the_plain_ones(tied):
    model = _model(tie_word_embeddings=tied)
    batch = _batch()
    plain, g_plain = _run(model, batch, "plain")
    fused, g_fused = _run(model, batch, "fused", chunk=7)
    assert fused == pytest.approx(plain, rel=1e-6)
    assert g_plain.keys() == g_fused.keys() and "lm_head.weight" in g_plain or tied
    for name in g_plain:  # equal up to fp32 summation order
        assert (g_plain[name] - g_fused[name]).abs().max() <= 1e-4 * g_plain[name].abs().max(), name


def test_fused_loss_with_a_frozen_head_and_a_bias():
    hidden = torch.randn(50, 16, requires_grad=True)
    head = torch.nn.Linear(16, 300)
    head.weight.requires_grad_(False)
    targets = torch.randint(0, 300, (50,))
    weights = torch.rand(50)
    plain = (torch.nn.functional.cross_entropy(head(hidden), targets, reduction="none") * weights).sum()
    plain.backward()
    g_plain, gb_plain = hidden.grad.clone(), head.bias.grad.clone()
    hidden.grad, head.bias.grad = None, None
    fused = FusedLinearCrossEntropy.apply(hidden, head.weight, head.bias, targets, weights, 8)
    (fused * 3).backward()  # the incoming gradient scales the stored ones
    assert fused.item() == pytest.approx(plain.item(), rel=1e-6)
    assert torch.allclose(hidden.grad, 3 * g_plain, atol=1e-6)
    assert torch.allclose(head.bias.grad, 3 * gb_plain, atol=1e-6)
    assert head.weight.grad is None


class _LargestFloat32(TorchDispatchMode):
    """The largest fp32 tensor any op produces (vocabulary-sized ones are the logits)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:  # a view allocates nothing
            return out
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if (isinstance(t, torch.Tensor) and t.dtype == torch.float32
                    and t.dim() >= 2 and t.shape[-1] == VOCAB):
                self.largest = max(self.largest, t.numel())
        return out


def _largest_logits(model, batch, mode, chunk):
    with _LargestFloat32() as seen:
        loss_sum(model, batch, mode, chunk).backward()
    return seen.largest


def test_the_fused_loss_never_holds_more_than_one_chunk_of_logits():
    """Measured on every op of the forward and backward pass: the plain loss makes fp32
    logits for every trained token (N x V); the fused one never more than chunk x V."""
    model = _model(tie_word_embeddings=False)
    for p in model.model.parameters():
        p.requires_grad_(False)  # LoRA-like: the head and the activations, not the weights
    batch = _batch(n=12, seed=3, weights=(1.0,))
    trained = int((batch["weights"] > 0).sum())
    assert trained > 100
    plain = _largest_logits(model, batch, "plain", 16)
    fused = _largest_logits(model, batch, "fused", 16)
    print(f"largest vocabulary-sized fp32 tensor: plain {plain} elements, fused {fused} ({trained} trained tokens)")
    assert plain >= trained * VOCAB
    assert fused <= 16 * VOCAB


def test_heads_that_transform_their_logits_use_the_plain_loss():
    model = _model(tie_word_embeddings=True)
    model.config.final_logit_softcapping = 30.0  # Gemma 2 style: the logits are not h @ W.T
    assert output_head(model) is None
    assert output_head(_model()) is model.lm_head or output_head(_model()) is not None


def test_the_head_is_checked_against_the_models_own_logits():
    """A head whose forward is not h @ W.T (here: a scaled one) is caught on the first batch."""
    model = _model(tie_word_embeddings=False)
    original = model.lm_head.forward
    model.lm_head.forward = lambda h: original(h) * 2.0
    batch = _batch()
    model.zero_grad()
    loss = loss_sum(model, batch, "fused")
    assert model.lm_head._sftdata_plain_head is False
    plain = loss_sum(model, batch, "plain")
    assert loss.item() == pytest.approx(plain.item(), rel=1e-6)

"""Packing: best-fit decreasing, and packed batches give the unpacked loss and gradients."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")
from sftdata.trainer.data import IGNORE, Example  # noqa: E402
from sftdata.trainer.evaluate import examples_loss  # noqa: E402
from sftdata.trainer.modeling import loss_sum  # noqa: E402
from sftdata.trainer.packing import (  # noqa: E402
    best_fit_decreasing, collate_packed, collate_padded, epoch_batches,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=60), st.integers(50, 120))
def test_best_fit_decreasing_places_every_item_once_within_capacity(lengths, capacity):
    bins = best_fit_decreasing(lengths, capacity)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= capacity for b in bins)
    # Best fit never needs more bins than twice the lower bound.
    assert len(bins) <= 2 * -(-sum(lengths) // capacity)


def test_best_fit_rejects_an_item_longer_than_a_row():
    with pytest.raises(ValueError):
        best_fit_decreasing([10, 200], 100)


def _examples(n: int, seed: int = 0, vocab: int = 1000) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(3, 40)
        ids = [rng.randrange(vocab) for _ in range(length)]
        w = [0.0] * (length - 1) + [0.0]
        start = rng.randint(0, length - 2)
        for t in range(start, length - 1):
            w[t] = rng.choice([1.0, 1.0, 0.5])
        out.append(Example(ids, ids[1:] + [IGNORE], w))
    return out


def test_epoch_batches_are_deterministic_and_cover_every_example():
    ex = _examples(50)
    for packing in (True, False):
        a = epoch_batches(ex, 4, packing, 64, seed=3, epoch=1)
        assert a == epoch_batches(ex, 4, packing, 64, seed=3, epoch=1)
        assert a != epoch_batches(ex, 4, packing, 64, seed=3, epoch=2)
        assert sorted(i for b in a for i in b) == list(range(50))


def test_unpacked_batches_group_similar_lengths():
    ex = _examples(256, seed=1)
    batches = epoch_batches(ex, 8, False, 64, seed=0, epoch=0)
    spread = sum(max(len(ex[i]) for i in b) - min(len(ex[i]) for i in b) for b in batches)
    rng = random.Random(0)
    order = list(range(256))
    rng.shuffle(order)
    random_spread = sum(max(len(ex[i]) for i in order[s:s + 8]) - min(len(ex[i]) for i in order[s:s + 8])
                        for s in range(0, 256, 8))
    assert spread < random_spread / 3


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_packed_loss_and_gradients_equal_unpacked(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    ex = _examples(6, seed=2)
    denom = sum(sum(e.weights) for e in ex)

    packed = collate_packed(ex)
    assert "attention_mask" not in packed
    assert packed["position_ids"][0, : len(ex[0])].tolist() == list(range(len(ex[0])))
    model.zero_grad()
    loss_p = loss_sum(model, packed) / denom
    loss_p.backward()
    grads_p = _grads(model)

    model.zero_grad()
    loss_u = loss_sum(model, collate_padded(ex, pad_id=0)) / denom
    loss_u.backward()
    grads_u = _grads(model)

    assert abs(loss_p.item() - loss_u.item()) < 1e-5
    assert grads_p.keys() == grads_u.keys() and grads_p
    for name in grads_p:
        assert torch.allclose(grads_p[name], grads_u[name], atol=1e-5), name


def test_eval_mode_packing_does_not_leak_across_sequences(tiny_model_dir):
    """In eval mode a cache would disable the packed mask; our paths pass use_cache=False."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    ex = _examples(5, seed=4)
    separate = [examples_loss(model, [e], row_length=64) for e in ex]
    total, weight = examples_loss(model, ex, row_length=200, batch_rows=4)
    assert abs(total - sum(s[0] for s in separate)) < 1e-3
    assert weight == pytest.approx(sum(s[1] for s in separate))
    # The pitfall is real: with the default cache the packed sequences attend to each other.
    packed = collate_packed(ex)
    with torch.no_grad():
        leaky = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
        clean = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                      use_cache=False).logits
    assert not torch.allclose(leaky, clean, atol=1e-4)

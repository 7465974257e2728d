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
    best_fit_decreasing, block_causal_mask, collate_packed, collate_padded, epoch_batches,
    flattens_rows, forward_parts, split_rows,
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


def test_best_fit_gives_an_item_longer_than_a_row_a_row_of_its_own():
    assert best_fit_decreasing([10, 200, 95], 100) == [[1], [2], [0]]
    assert best_fit_decreasing([10, 200, 50], 100) == [[1], [2, 0]]


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 150), min_size=1, max_size=60), st.integers(50, 120), st.integers(1, 8))
def test_split_rows_gives_back_at_most_the_batch_rows(lengths, capacity, batch_size):
    ex = [Example([1] * n, [1] * n, [1.0] * n) for n in lengths]
    for batch in epoch_batches(ex, batch_size, True, capacity, seed=0, epoch=0):
        rows = split_rows([ex[i] for i in batch], capacity)
        assert [e for row in rows for e in row] == [ex[i] for i in batch]  # order kept
        assert all(sum(len(e) for e in row) <= capacity or len(row) == 1 for row in rows)
        assert len(rows) <= batch_size


def test_block_causal_mask_is_causal_within_each_sequence_only():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0]])
    allowed = (block_causal_mask(pos) == 0)[0, 0].int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0],
                       [1, 1, 0, 0, 0, 0],
                       [1, 1, 1, 0, 0, 0],
                       [0, 0, 0, 1, 0, 0],
                       [0, 0, 0, 1, 1, 0],
                       [0, 0, 0, 0, 0, 1]]


def test_packed_rows_sit_side_by_side_padded_to_the_longest():
    ex = _examples(12, seed=5)
    batch = collate_packed(ex, row_length=64, pad_id=7)
    rows = split_rows(ex, 64)
    assert len(rows) > 1 and batch["input_ids"].shape == (len(rows), max(sum(map(len, r)) for r in rows))
    assert batch["attention_mask"].shape == (len(rows), 1, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
    assert float(batch["weights"].sum()) == pytest.approx(sum(sum(e.weights) for e in ex))
    short = min(range(len(rows)), key=lambda r: sum(map(len, rows[r])))
    used = sum(map(len, rows[short]))
    assert batch["input_ids"][short, used:].eq(7).all() and batch["weights"][short, used:].eq(0).all()
    flat = collate_packed(ex, row_length=64, flatten=True)
    assert flat["input_ids"].shape == (1, sum(map(len, ex))) and "attention_mask" not in flat


def test_flattening_is_only_for_kernels_that_read_boundaries_from_position_ids():
    assert not flattens_rows("sdpa") and not flattens_rows("eager")
    assert flattens_rows("flash_attention_2") and flattens_rows("kernels-community/flash-attn3")


def test_forward_parts_bound_the_tokens_of_one_pass_in_whole_rows():
    ex = _examples(40, seed=6)
    for packing in (True, False):
        parts = forward_parts(ex, packing, 64, max_tokens=128)
        assert [e for part in parts for e in part] == ex and len(parts) > 1
        for part in parts:
            units = split_rows(part, 64) if packing else [[e] for e in part]
            widest = max(sum(map(len, u)) for u in units)
            assert len(units) * widest <= 128 or len(units) == 1
    assert forward_parts(ex, True, 64, None) == [ex]


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss_and_grads(model, batches, denom):
    model.zero_grad()
    total = 0.0
    for batch in batches:
        loss = loss_sum(model, batch) / denom
        loss.backward()
        total += loss.item()
    return total, _grads(model)


LAYOUTS = {
    "one row": lambda ex: [collate_packed(ex)],
    "rows side by side": lambda ex: [collate_packed(ex, row_length=48)],
    "rows in forward parts": lambda ex: [collate_packed(p, row_length=48) for p in forward_parts(ex, True, 48, 96)],
    "flattened (flash layout)": lambda ex: [collate_packed(ex, row_length=48, flatten=True)],
}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_packed_loss_and_gradients_equal_unpacked(tiny_model_dir, attn, layout):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attn)
    model.train()
    ex = _examples(9, seed=2)
    denom = sum(sum(e.weights) for e in ex)
    batches = LAYOUTS[layout](ex)
    if layout == "rows side by side":
        assert batches[0]["input_ids"].shape[0] > 1
    loss_p, grads_p = _loss_and_grads(model, batches, denom)
    loss_u, grads_u = _loss_and_grads(model, [collate_padded([e], pad_id=0) for e in ex], denom)

    assert abs(loss_p - loss_u) < 1e-5
    assert grads_p.keys() == grads_u.keys() and grads_p
    for name in grads_p:
        assert torch.allclose(grads_p[name], grads_u[name], atol=1e-5), name


def _step_memory(model, batch) -> tuple[int, int]:
    """``(elements of the attention mask the layers get, bytes autograd keeps for the
    backward pass)`` of one loss_sum, parameters excluded: the memory a training step holds
    at its peak, counted exactly rather than timed or sampled."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}
    mask_elements = []

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    def look(module, args, kwargs):
        mask_elements.append(kwargs["attention_mask"].numel())

    hook = model.model.layers[0].self_attn.register_forward_pre_hook(look, with_kwargs=True)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            # plain: the fused loss keeps a constant (the head's fp32 weight gradient) that
            # would hide how the attention's share grows.
            loss_sum(model, batch, "plain")
    finally:
        hook.remove()
    return mask_elements[0], sum(seen.values())


def test_memory_grows_with_rows_times_length_squared_not_with_all_tokens_squared(tiny_model_dir):
    """B rows of L tokens: side by side the attention masks are B*L^2 and everything the
    step keeps grows linearly in B; flattened into one sequence for sdpa they are (B*L)^2."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    length = 256
    rng = random.Random(0)

    def rows(n):  # n full rows, each of 4 sequences of 64 tokens; few trained targets, so
        ex = []  # that the output head (49k words) does not hide the attention's share
        for _ in range(4 * n):
            ids = [rng.randrange(1000) for _ in range(64)]
            ex.append(Example(ids, ids[1:] + [IGNORE], [0.0] * 62 + [1.0, 0.0]))
        return ex

    side, flat = {}, {}
    for b in (1, 2, 4):
        ex = rows(b)
        side[b] = _step_memory(model, collate_packed(ex, row_length=length))
        flat[b] = _step_memory(model, collate_packed(ex, row_length=length, flatten=True))
    print("(mask elements, bytes kept): side by side", side, "flattened", flat)
    assert {b: m for b, (m, _) in side.items()} == {b: b * length**2 for b in (1, 2, 4)}
    assert {b: m for b, (m, _) in flat.items()} == {b: (b * length) ** 2 for b in (1, 2, 4)}
    kept = {b: k for b, (_, k) in side.items()}
    assert kept[2] == pytest.approx(2 * kept[1], rel=0.01) and kept[4] == pytest.approx(4 * kept[1], rel=0.01)
    # Flattened, sdpa keeps a float copy of the (B*L)^2 mask per layer: the excess is quadratic.
    excess = {b: flat[b][1] - side[b][1] for b in (2, 4)}
    assert excess[4] > 3.5 * excess[2] > 0


def test_eval_mode_packing_does_not_leak_across_sequences(tiny_model_dir):
    """In eval mode a cache would disable transformers' packed detection; an explicit
    block mask does not depend on it, and our paths also pass use_cache=False."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    ex = _examples(5, seed=4)
    separate = [examples_loss(model, [e], row_length=64) for e in ex]
    total, weight = examples_loss(model, ex, row_length=200, batch_rows=4)
    assert abs(total - sum(s[0] for s in separate)) < 1e-3
    assert weight == pytest.approx(sum(s[1] for s in separate))
    flat = collate_packed(ex, flatten=True)
    masked = collate_packed(ex)
    with torch.no_grad():
        # The pitfall is real: flattened, with the default cache, packed sequences attend to each other.
        leaky = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"]).logits
        clean = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"], use_cache=False).logits
        # With the explicit mask even a cache cannot make them see each other.
        with_cache = model(input_ids=masked["input_ids"], position_ids=masked["position_ids"],
                           attention_mask=masked["attention_mask"]).logits
    assert not torch.allclose(leaky, clean, atol=1e-4)
    assert torch.allclose(with_cache, clean, atol=1e-5)

"""Tokenising once: parallel workers give the single process's result; the disk cache is
keyed by everything the result depends on; a run writes it and a rerun reads it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from sftdata.trainer.data import MaskOptions, prepare_tokenizer  # noqa: E402
from sftdata.trainer.evaluate import load_records  # noqa: E402
from sftdata.trainer import tokencache  # noqa: E402
from sftdata.trainer.tokencache import cache_key, cached_tokenise, tokenise_all  # noqa: E402

REALWORLD = Path("/work/shared/data/realworld")


@pytest.fixture(scope="module")
def alpaca():
    path = REALWORLD / "alpaca_en_demo.json"
    if not path.is_file():
        pytest.skip("the shared real-world data is not here")
    return load_records(path)[:120]


def _same(a, b):
    assert [(r.dropped, r.truncated, r.warnings, r.trained_turns) for r in a] == \
        [(r.dropped, r.truncated, r.warnings, r.trained_turns) for r in b]
    assert [[(e.input_ids, e.targets, e.weights) for e in r.examples] for r in a] == \
        [[(e.input_ids, e.targets, e.weights) for e in r.examples] for r in b]


def test_parallel_workers_give_the_single_process_result_in_order(smol_tokenizer, alpaca):
    tok = prepare_tokenizer(smol_tokenizer)
    one = tokenise_all(tok, alpaca, 256, MaskOptions(), workers=1)
    two = tokenise_all(tok, alpaca, 256, MaskOptions(), workers=2)
    assert sum(len(r.examples) for r in one) > 100 and any(r.truncated for r in one)
    _same(one, two)


def test_the_cache_key_changes_with_everything_the_result_depends_on(smol_tokenizer, alpaca):
    import copy

    tok = prepare_tokenizer(copy.deepcopy(smol_tokenizer))
    base = cache_key(tok, alpaca, 256, MaskOptions())
    assert base == cache_key(tok, [dict(r) for r in alpaca], 256, MaskOptions())
    changed = [dict(r) for r in alpaca]
    changed[5] = {**changed[5], "messages": changed[5]["messages"][:1] + [{"role": "assistant", "content": "x"}]}
    assert cache_key(tok, changed, 256, MaskOptions()) != base
    assert cache_key(tok, alpaca, 512, MaskOptions()) != base
    assert cache_key(tok, alpaca, 256, MaskOptions(train_on="last")) != base
    other = copy.deepcopy(tok)
    other.chat_template = tok.chat_template.replace("<|im_start|>", "<|im_start|> ")
    assert cache_key(other, alpaca, 256, MaskOptions()) != base
    added = copy.deepcopy(tok)
    added.add_tokens(["<new>"], special_tokens=True)
    assert cache_key(added, alpaca, 256, MaskOptions()) != base


def test_a_cached_result_is_read_back_without_tokenising(smol_tokenizer, alpaca, tmp_path, monkeypatch):
    tok = prepare_tokenizer(smol_tokenizer)
    first = cached_tokenise(tok, alpaca, 256, MaskOptions(), workers=2, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pkl"))) == 1

    def fail(*a, **k):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(tokencache, "tokenise_all", fail)
    _same(first, cached_tokenise(tok, alpaca, 256, MaskOptions(), cache=tmp_path))
    # A damaged cache file is not trusted: tokenised afresh (here: the patched function).
    next(tmp_path.glob("*.pkl")).write_bytes(b"not a pickle")
    with pytest.raises(AssertionError, match="tokenised again"):
        cached_tokenise(tok, alpaca, 256, MaskOptions(), cache=tmp_path)


def test_a_run_writes_the_cache_and_a_rerun_uses_it(tiny_model_dir, chat_file, tmp_path, monkeypatch):
    from sftdata.trainer import TrainConfig, train

    monkeypatch.setenv("SFTDATA_CACHE", str(tmp_path / "cache"))
    cfg = dict(data=str(chat_file), model=str(tiny_model_dir), max_length=128, batch_size=2, progress=False,
               num_samples=0, max_steps=2, eval_split=0.2)
    first = train(TrainConfig(output_dir=str(tmp_path / "a"), **cfg))
    files = sorted((tmp_path / "cache" / "tokenised").glob("*.pkl"))
    assert len(files) == 2  # training and held-out records
    stamps = [os.stat(f).st_mtime_ns for f in files]
    second = train(TrainConfig(output_dir=str(tmp_path / "b"), **cfg))
    assert [os.stat(f).st_mtime_ns for f in files] == stamps
    assert second.losses == first.losses and second.trained_tokens == first.trained_tokens
    train(TrainConfig(output_dir=str(tmp_path / "c"), tokenize_cache=False, **cfg))
    assert len(list((tmp_path / "cache" / "tokenised").glob("*.pkl"))) == 2

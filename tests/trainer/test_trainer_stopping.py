"""Early stopping on the eval loss, the best step's weights, and report_to trackers."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from sftdata.errors import UserError  # noqa: E402
from sftdata.trainer import TrainConfig, evaluate_loss, train  # noqa: E402
from sftdata.trainer.stopping import BestTracker  # noqa: E402


def _config(data, model_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(data), model=str(model_dir), output_dir=str(out), max_length=128, batch_size=2,
                learning_rate=5e-3, progress=False, num_samples=0, eval_split=0.2, eval_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_the_tracker_counts_evals_without_improvement():
    t = BestTracker(patience=2, threshold=0.1)
    assert t.update(1, 2.0) and t.update(2, 1.8)
    assert not t.update(3, 1.75)  # better, but by less than the threshold
    assert not t.should_stop
    assert not t.update(4, 1.9) and t.should_stop
    assert (t.best_step, t.best_loss) == (2, 1.8)
    assert not BestTracker().update(1, float("nan"))


def test_a_diverging_run_stops_early_and_saves_its_best_step(tiny_model_dir, chat_file, tmp_path):
    """A learning rate far too high: the held-out loss rises after a few steps. The run stops
    `patience` evals after its best one and saves that step's weights, not the last."""
    out = tmp_path / "run"
    result = train(_config(chat_file, tiny_model_dir, out, learning_rate=0.3, warmup_ratio=0.0, max_steps=40,
                           lr_scheduler="constant", early_stopping_patience=2, load_best=True))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r and r["step"] > 0 and "loss" in r}
    assert result.stopped_early and result.steps < 40
    best = min(evals, key=evals.get)
    assert result.best_step == best and result.steps == best + 2
    assert result.best_eval_loss == pytest.approx(evals[best], rel=1e-6)
    # The saved adapter is the best step's: its held-out loss is the best one, not the last.
    assert result.eval_loss == pytest.approx(evals[best], rel=1e-4)
    from sftdata.trainer.evaluate import load_records
    from sftdata.trainer.loop import _split

    cfg = _config(chat_file, tiny_model_dir, out)
    held = _split(load_records(cfg.data), cfg)[1]
    assert evaluate_loss(out, held, max_length=128) == pytest.approx(evals[best], rel=1e-3)
    assert evals[max(evals)] > evals[best]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_step"] == best and summary["stopped_early"] is True


def test_without_early_stopping_the_run_goes_to_the_end(tiny_model_dir, chat_file, tmp_path):
    result = train(_config(chat_file, tiny_model_dir, tmp_path / "run", learning_rate=0.3, warmup_ratio=0.0,
                           max_steps=6, lr_scheduler="constant"))
    assert result.steps == 6 and not result.stopped_early and result.best_step is not None


def test_report_to_tensorboard_writes_the_metrics(tiny_model_dir, chat_file, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(_config(chat_file, tiny_model_dir, out, max_steps=3, report_to=["tensorboard"]))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"loss", "eval_loss", "lr", "grad_norm"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_tracker_that_is_not_installed_is_a_one_line_error_before_loading(tiny_model_dir, chat_file,
                                                                             tmp_path, tracker):
    import importlib.util

    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed")
    with pytest.raises(UserError, match=f"report_to {tracker} needs the {tracker} package"):
        train(_config(chat_file, tiny_model_dir, tmp_path / "run", max_steps=1, report_to=[tracker]))
    assert not (tmp_path / "run" / "train_config.yaml").exists()

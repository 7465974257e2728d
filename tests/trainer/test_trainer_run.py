"""Training runs on a tiny random Llama: lora/full/freeze, metrics, resume after a kill,
merge, evaluate_loss, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
from trainer_helpers import make_records, write_jsonl  # noqa: E402
from sftdata.trainer import TrainConfig, evaluate_loss, train  # noqa: E402
from sftdata.trainer.modeling import prepare_model  # noqa: E402


def _config(data, model_dir, out, **kw) -> TrainConfig:
    base = dict(data=str(data), model=str(model_dir), output_dir=str(out), max_length=128,
                pack_length=256, batch_size=1, learning_rate=5e-3, progress=False, num_samples=0)
    base.update(kw)
    return TrainConfig(**base)


def test_lora_run_lowers_loss_and_writes_adapter_and_metrics(tiny_model_dir, chat_file, tmp_path):
    out = tmp_path / "run"
    result = train(_config(chat_file, tiny_model_dir, out, max_steps=8, eval_split=0.1, eval_every=4,
                           sample_prompts=["Tell me about bread."], sample_max_new_tokens=4))
    assert result.steps == 8 and len(result.losses) == 8
    assert result.losses[-1] < result.losses[0]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (out / "tokenizer.json").is_file() and (out / "train_config.yaml").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "trained_tokens"} <= steps[0].keys()
    assert steps[-1]["trained_tokens"] == result.trained_tokens > 0
    assert steps[1]["lr"] > steps[-1]["lr"]  # cosine decay after warmup
    assert "eval_loss" in steps[3] and rows[-1]["eval_loss"] == pytest.approx(result.eval_loss, abs=1e-5)
    assert rows[0] == {"step": 0, "eval_loss": pytest.approx(result.initial_eval_loss, abs=1e-5)}
    assert result.eval_loss < result.initial_eval_loss  # held out, before vs after
    assert len(result.samples) == 1 and result.samples[0][0] == "Tell me about bread."
    held = yaml.safe_load((out / "train_config.yaml").read_text())
    assert held["method"] == "lora"
    # What the run cost, and the speed over the optimizer steps, in summary.json.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["trained_tokens"] == result.trained_tokens
    step_seconds = sum(r["step_seconds"] for r in steps)
    assert summary["trained_tokens_per_s"] == pytest.approx(result.trained_tokens / step_seconds, rel=1e-3)
    assert [p["name"] for p in summary["cost"]["phases"]] == ["load and tokenise", "train", "eval, save, samples"]
    assert all(p["peak_rss_mb"] > 50 for p in summary["cost"]["phases"])
    assert summary["cost"]["peak_rss_mb"] >= max(p["peak_rss_mb"] for p in summary["cost"]["phases"]) - 1


def test_cpu_defaults_are_filled_in_and_recorded(tiny_model_dir, chat_file, tmp_path):
    """On CPU the config's unset options are chosen for the machine; train_config.yaml
    records what was used."""
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(chat_file), model=str(tiny_model_dir), output_dir=str(out), max_steps=1,
                      progress=False, num_samples=0)
    assert cfg.pack_length is None and cfg.gradient_checkpointing is None
    train(cfg)
    held = yaml.safe_load((out / "train_config.yaml").read_text())
    assert held["pack_length"] == 512 and held["forward_tokens"] == 512
    assert held["gradient_checkpointing"] is True and held["threads"] >= 1


def test_freeze_trains_only_the_last_layers(tiny_model_dir, chat_file, tmp_path):
    cfg = _config(chat_file, tiny_model_dir, tmp_path / "f", method="freeze", freeze_trainable_layers=1)
    model, _ = prepare_model(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm")) for n in trainable)


def test_full_run_saves_a_standalone_model(tiny_model_dir, chat_file, tmp_path):
    out = tmp_path / "full"
    result = train(_config(chat_file, tiny_model_dir, out, method="full", max_steps=2,
                           gradient_checkpointing=True, lr_scheduler="linear"))
    assert result.steps == 2 and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    records = make_records(6, seed=9)
    loss = evaluate_loss(out, records, max_length=128)
    assert 0 < loss < 20


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    code = "import sys; from sftdata.cli import main; sys.argv[0] = 'sftdata'; main()"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, "-c", code, "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.slow
def test_resume_after_kill_continues_the_same_loss_curve(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", make_records(80, seed=3))
    common = ["--data", str(data), "--model", str(tiny_model_dir), "--max-steps", "14",
              "--max-length", "128", "--batch-size", "1", "--lr", "5e-3", "--save-every", "3",
              "--set", "lora_dropout=0.1", "--set", "pack_length=256", "--set", "progress=false"]
    full_out, killed_out = tmp_path / "full", tmp_path / "killed"
    proc = _run_cli([*common, "-o", str(killed_out)])
    marker = killed_out / "checkpoints" / "step-0000006" / "state.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), proc.stdout.read().decode()[-2000:]
    assert not (killed_out / "adapter_model.safetensors").exists(), "run finished before the kill"

    resumed = _run_cli([*common, "-o", str(killed_out), "--resume"])
    uninterrupted = _run_cli([*common, "-o", str(full_out)])
    for p in (resumed, uninterrupted):
        output = p.communicate(timeout=600)[0].decode()
        assert p.returncode == 0, output[-2000:]
    expected, got = _losses(full_out), _losses(killed_out)
    assert sorted(got) == list(range(1, 15)) == sorted(expected)
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step


def test_merge_gives_the_same_logits_as_base_plus_adapter(tiny_model_dir, chat_file, tmp_path, cli):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    train(_config(chat_file, tiny_model_dir, out, max_steps=3, learning_rate=2e-2))
    merged_dir = tmp_path / "merged"
    result = cli("merge", out, "-o", merged_dir)
    assert result.exit_code == 0, result.stderr
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    ids = torch.randint(0, 1000, (2, 17))
    with torch.no_grad():
        a, b, c = (m.eval()(ids).logits for m in (merged, with_adapter, base))
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(b, c, atol=1e-3)  # the adapter actually changed the model


def test_cli_rejects_unknown_config_keys_in_one_line(tmp_path, cli):
    bad = tmp_path / "train.yaml"
    bad.write_text("data: x.jsonl\noutput_dir: out\nlearning_rat: 0.1\n")
    result = cli("train", "--config", bad)
    assert result.exit_code == 2 and "learning_rat" in result.stderr
    result = cli("train", tmp_path / "x.jsonl")  # DATA is the argument, as in every command
    assert result.exit_code == 2 and "-o/--output" in result.stderr
    old = cli("train", "--data", tmp_path / "x.jsonl")  # the deprecated spelling still works
    assert old.exit_code == 2 and "--data is deprecated" in old.stderr and "-o/--output" in old.stderr
    both = cli("train", tmp_path / "x.jsonl", "--data", tmp_path / "y.jsonl", "-o", tmp_path / "o")
    assert both.exit_code == 2 and "give the training data once" in both.stderr
    choice = cli("train", tmp_path / "x.jsonl", "-o", tmp_path / "o", "--method", "qlra")
    assert choice.exit_code == 2 and "'qlra' is not one of 'lora', 'qlora', 'full', 'freeze'" in choice.stderr
    result = cli("merge", tmp_path, "-o", tmp_path / "m")
    assert result.exit_code == 2 and "not a LoRA adapter" in result.stderr


def test_example_config_validates():
    from importlib import resources

    from sftdata.trainer import load_config

    path = resources.files("sftdata.trainer").joinpath("train.example.yaml")
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sftdata train --config")
    cfg = load_config(Path(str(path)))
    assert cfg.method == "lora" and cfg.lora_target == "all-linear"


def _grad_norms(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["grad_norm"] for r in rows if "grad_norm" in r}


def test_gradient_accumulation_matches_one_big_batch(tiny_model_dir, chat_file, tmp_path):
    """Two micro-batches of one packed row each == one micro-batch of both rows.

    The gradient norm is compared too: Adam (and clipping) are blind to a wrong gradient
    scale, so equal weights alone would not show one."""
    from safetensors.torch import load_file

    weights = []
    for name, batch, accum in (("big", 2, 1), ("accum", 1, 2)):
        out = tmp_path / name
        result = train(_config(chat_file, tiny_model_dir, out, max_steps=2, batch_size=batch,
                               grad_accum=accum, max_grad_norm=None))
        weights.append((result, load_file(out / "adapter_model.safetensors"), _grad_norms(out)))
    (big, w_big, n_big), (acc, w_acc, n_acc) = weights
    assert big.losses == pytest.approx(acc.losses, abs=1e-5)
    assert n_big == pytest.approx(n_acc, rel=1e-4) and all(n_big.values())
    assert big.trained_tokens == acc.trained_tokens
    # Adam's first steps are about g / (|g| + eps): rounding-level gradient differences (~1e-7
    # of the largest) on elements whose gradient is near eps move them by up to ~1e-5.
    for key in w_big:
        assert torch.allclose(w_big[key], w_acc[key], atol=1e-5), key


def test_forward_parts_give_the_same_training_as_whole_micro_batches(tiny_model_dir, chat_file, tmp_path):
    """A micro-batch of 4 rows run one row per forward pass == all 4 rows in one pass."""
    from safetensors.torch import load_file

    runs = []
    for name, forward in (("whole", 4096), ("parts", 256)):
        out = tmp_path / name
        result = train(_config(chat_file, tiny_model_dir, out, max_steps=2, batch_size=4,
                               forward_tokens=forward, max_grad_norm=None))
        runs.append((result, load_file(out / "adapter_model.safetensors")))
    (whole, w_whole), (parts, w_parts) = runs
    assert whole.losses == pytest.approx(parts.losses, abs=1e-5)
    for key in w_whole:
        assert torch.allclose(w_whole[key], w_parts[key], atol=1e-6), key


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_with_accumulation(tiny_model_dir, tmp_path):
    """DDP over 2 CPU processes (gloo) == 1 process accumulating the same 2 micro-batches."""
    import shutil

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    data = write_jsonl(tmp_path / "d.jsonl", make_records(40))
    common = ["--data", str(data), "--model", str(tiny_model_dir), "--max-steps", "3",
              "--batch-size", "1", "--max-length", "128", "--set", "pack_length=256",
              "--set", "progress=false", "--eval-split", "0.2", "--eval-every", "2"]
    code = "import sys; from sftdata.cli import main; sys.argv[0] = 'sftdata'; main()"
    script = tmp_path / "sftdata_main.py"
    script.write_text(code)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    ddp = subprocess.run([torchrun, "--nproc_per_node", "2", str(script), "train", *common,
                          "-o", str(tmp_path / "ddp")], env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = subprocess.run([sys.executable, str(script), "train", *common, "--grad-accum", "2",
                             "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    assert ddp.stderr.count("final train loss") == 1  # only the first process reports
    a, b = _losses(tmp_path / "ddp"), _losses(tmp_path / "one")
    assert sorted(a) == [1, 2, 3]
    assert a == pytest.approx(b, abs=1e-5)
    # Held-out loss: each process scores half the examples and the sums are reduced.
    evals = [[r["eval_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if "eval_loss" in r] for run in
             (tmp_path / "ddp", tmp_path / "one")]
    assert len(evals[0]) == 3 and evals[0] == pytest.approx(evals[1], abs=1e-5)
    # The gradient itself, not only what Adam makes of it: a missing world-size factor halves this.
    assert _grad_norms(tmp_path / "ddp") == pytest.approx(_grad_norms(tmp_path / "one"), rel=1e-4)


@pytest.mark.slow
def test_torchrun_resume_with_dropout_continues_each_ranks_loss_curve(tiny_model_dir, tmp_path):
    """2 processes, lora_dropout 0.1: resuming from step 3 reproduces steps 4-6, because each
    rank gets back its own RNG state (dropout draws differ per rank)."""
    import shutil

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    data = write_jsonl(tmp_path / "d.jsonl", make_records(60, seed=5))
    script = tmp_path / "sftdata_main.py"
    script.write_text("import sys; from sftdata.cli import main; sys.argv[0] = 'sftdata'; main()")
    common = ["--data", str(data), "--model", str(tiny_model_dir), "--max-steps", "6", "--batch-size", "1",
              "--max-length", "128", "--save-every", "3", "--lr", "5e-3", "--set", "pack_length=256",
              "--set", "lora_dropout=0.1", "--set", "progress=false"]
    env = {**os.environ, "TQDM_DISABLE": "1"}

    def run(out, *extra):
        done = subprocess.run([torchrun, "--nproc_per_node", "2", str(script), "train", *common, "-o", str(out),
                               *extra], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    full = tmp_path / "full"
    run(full)
    assert (full / "checkpoints" / "step-0000003" / "state.json").is_file()
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    run(resumed, "--resume")  # continues from step 3: metrics after it are recomputed
    expected, got = _losses(full), _losses(resumed)
    assert sorted(got) == list(range(1, 7))
    for step in (4, 5, 6):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    assert _grad_norms(resumed) == pytest.approx(_grad_norms(full), rel=1e-5)

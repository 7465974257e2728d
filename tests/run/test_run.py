"""`sftdata run`: stages are cached by key, a change recomputes only that stage and the
ones after it, the run directory ends complete, and a killed run continues."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sftdata.recipe import load_recipe
from sftdata.runner import run_recipe

ROOT = Path(__file__).resolve().parents[2]


def make_data(folder: Path) -> None:
    rows = [{"instruction": f"Name the color number {i}.", "output": f"Color {i} is {c}."}
            for i, c in enumerate(["red", "blue", "green", "teal", "gold", "gray"] * 4)]
    rows.append(dict(rows[0]))                                         # exact duplicate
    rows.append({"instruction": "Help", "output": "As an AI language model, I cannot assist with that."})
    (folder / "domain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    general = [{"instruction": f"What is {a} plus {a}?", "output": str(2 * a)} for a in range(40)]
    (folder / "general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in general), encoding="utf-8")


RECIPE = """\
# Run: sftdata run recipe.yaml
name: test
run_dir: {run_dir}
inputs:
  - {{path: domain.jsonl, name: domain}}
steps:
  - refusal: {{}}
  - exact_dedup: {{}}
mix:
  sources:
    - {{name: main, ratio: 0.8}}
    - {{path: general.jsonl, name: general, ratio: 0.2}}
  seed: 0
output: {{format: openai, file: data.jsonl}}
"""

TRAIN = """\
train:
  model: {model}
  method: lora
  max_steps: {steps}
  batch_size: 2
  max_length: 64
  save_every: 1
  num_samples: 1
  sample_max_new_tokens: 4
  progress: false
"""


def write_recipe(folder: Path, train: str = "") -> Path:
    make_data(folder)
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(run_dir=folder / "run") + train, encoding="utf-8")
    return path


def cached_flags(summary: dict) -> dict[str, bool]:
    return {s["step"]: s["cached"] for s in summary["stages"]}


def test_rerun_reuses_stages_and_a_change_recomputes_from_there(tmp_path):
    path = write_recipe(tmp_path)
    first = run_recipe(load_recipe(path), path, log=lambda _: None)
    assert set(cached_flags(first).values()) == {False}
    drops = {s["step"]: s["drops"] for s in first["stages"]}
    assert drops["refusal"] == {"refusal": 1} and drops["exact_dedup"] == {"exact_duplicate": 1}
    run = tmp_path / "run"
    for name in ("data.jsonl", "rejects.jsonl", "report.html", "stats.json", "summary.json"):
        assert (run / name).exists(), name
    records = [json.loads(line) for line in (run / "data.jsonl").read_text().splitlines()]
    assert len(records) == first["records"] == 30  # 24 domain kept, mixed 80/20
    taken = {s["name"]: s["taken"] for s in first["stages"][-1]["mix"]["sources"]}
    assert taken == {"main": 24, "general": 6}
    # The report knows each input's format and, for Alpaca, how many inputs were empty.
    stats = json.loads((run / "stats.json").read_text())
    assert [(i["source"], i["format"], i["rows_in"], i["facts"]["empty_input"]) for i in stats["inputs"]] == \
        [("domain", "alpaca", 26, 26)]
    assert stats["empty_input"]["share"] == 1.0
    assert {s["source"]: s["format"] for s in stats["sources"]} == {"main": "alpaca", "general": "alpaca"}

    # What each stage cost, in order, and the whole run's peak.
    phases = first["cost"]["phases"]
    assert [p["name"] for p in phases] == ["read:domain", "refusal", "exact_dedup", "mix", "write", "audit"]
    assert all(p["seconds"] >= 0 and p["peak_rss_mb"] > 20 for p in phases)
    assert first["cost"]["peak_rss_mb"] >= max(p["peak_rss_mb"] for p in phases) - 1
    assert json.loads((run / "summary.json").read_text())["cost"]["phases"] == phases

    again = run_recipe(load_recipe(path), path, log=lambda _: None)
    assert set(cached_flags(again).values()) == {True}

    changed = run_recipe(load_recipe(path, ["mix.seed=1"]), path, log=lambda _: None)
    assert cached_flags(changed) == {"read:domain": True, "refusal": True, "exact_dedup": True, "mix": False}
    changed = run_recipe(load_recipe(path, ["steps.1.exact_dedup.fields=prompt"]), path, log=lambda _: None)
    assert cached_flags(changed) == {"read:domain": True, "refusal": True, "exact_dedup": False, "mix": False}
    # Old stage folders are pruned: one folder per stage of the current recipe.
    assert len(list((run / "stages").iterdir())) == 4


def test_edited_input_file_invalidates_its_read_stage(tmp_path):
    path = write_recipe(tmp_path)
    run_recipe(load_recipe(path), path, log=lambda _: None)
    with open(tmp_path / "domain.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"instruction": "One more", "output": "Yes."}) + "\n")
    summary = run_recipe(load_recipe(path), path, log=lambda _: None)
    assert set(cached_flags(summary).values()) == {False}
    assert summary["stages"][0]["rows_out"] == 27


@pytest.mark.slow
def test_train_block_trains_then_is_cached(tmp_path, tiny_model_dir):
    path = write_recipe(tmp_path, TRAIN.format(model=tiny_model_dir, steps=4))
    summary = run_recipe(load_recipe(path), path, log=lambda _: None)
    train = summary["train"]
    assert train["done"] and train["steps"] == 4
    assert (Path(train["output_dir"]) / "adapter_config.json").exists()
    assert len(train["samples"]) == 1 and {"prompt", "before", "after"} <= set(train["samples"][0])
    logs = []
    run_recipe(load_recipe(path), path, log=logs.append)
    assert any("train" in line and "(cached)" in line for line in logs)


@pytest.mark.slow
def test_killed_run_continues_where_it_stopped(tmp_path, tiny_model_dir):
    path = write_recipe(tmp_path, TRAIN.format(model=tiny_model_dir, steps=40))
    cmd = [sys.executable, "-m", "sftdata.cli", "run", str(path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoints = tmp_path / "run" / "train" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (checkpoints.exists() and len(list(checkpoints.iterdir())) >= 1):
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not json.loads((tmp_path / "run" / "train.json").read_text())["done"]

    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    log = out.stdout + out.stderr
    assert "(cached)" in log and "resuming" in log
    state = json.loads((tmp_path / "run" / "train.json").read_text())
    assert state["done"] and state["steps"] == 40


def test_installed_command_prints_what_the_run_cost(tmp_path):
    path = write_recipe(tmp_path)
    sftdata = Path(sys.executable).parent / "sftdata"
    out = subprocess.run([str(sftdata), "run", str(path)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": "120"})
    assert out.returncode == 0, out.stderr
    cost = json.loads((tmp_path / "run" / "summary.json").read_text())["cost"]
    assert "what the run cost" in out.stderr and "peak RSS (MiB)" in out.stderr
    for phase in cost["phases"]:
        assert phase["name"] in out.stderr
    assert f"{cost['peak_rss_mb']:,.0f}" in out.stderr


def test_generate_input_runs_once_then_is_cached(tmp_path, capsys):
    from sftdata.generate.fake_server import FakeServer

    make_data(tmp_path)
    with FakeServer(latency=0.0, fault_rate=0.2, seed=3) as server:
        path = tmp_path / "recipe.yaml"
        path.write_text(
            f"# Run: sftdata run recipe.yaml\nname: gen\nrun_dir: {tmp_path / 'run'}\ninputs:\n"
            "  - {path: domain.jsonl, name: domain}\n"
            f"  - {{name: synth, generate: {{num: 5, base_url: '{server.url}', model: fake, request_timeout: 2}}}}\n",
            encoding="utf-8")
        logs: list[str] = []
        first = run_recipe(load_recipe(path), path, log=logs.append)
        gen = first["stages"][1]
        assert gen["step"] == "read:synth" and gen["rows_out"] == 5
        assert gen["generate"]["backend"] == "openai-compatible" and gen["generate"]["complete"]
        assert any("generated with openai-compatible / fake: 5 records" in line for line in logs)
        shown = capsys.readouterr().err  # the progress: records of the goal, requests of the budget
        assert re.search(r"records\s.*5/5", shown) and re.search(r"requests\s.*\d+/\d+", shown)
        assert first["records"] == 26 + 5  # 24 domain + duplicate + refusal (no steps), + 5 generated
        again = run_recipe(load_recipe(path), path, log=lambda _: None)
        assert cached_flags(again) == {"read:domain": True, "read:synth": True}


def test_output_emit_writes_loader_configs_and_the_data_folder_loads_alone(tmp_path):
    """A recipe's output.emit writes the configs beside the data; with the data in its own
    folder, rejects.jsonl (in the run directory) is not where a loader looks."""
    datasets = pytest.importorskip("datasets")
    path = write_recipe(tmp_path)
    text = path.read_text().replace("output: {format: openai, file: data.jsonl}",
                                    "output: {format: sharegpt, file: data/train.jsonl, emit: [llamafactory, trl]}")
    path.write_text(text)
    summary = run_recipe(load_recipe(path), path, log=lambda *_: None, train=False)
    run = Path(summary["run_dir"])
    entry = json.loads((run / "data" / "dataset_info.json").read_text())["train"]
    assert entry["file_name"] == "train.jsonl" and entry["formatting"] == "sharegpt"
    assert (run / "data" / "train.trl.py").exists()
    assert summary["rejected_by_reason"] and (run / "rejects.jsonl").exists()
    loaded = datasets.load_dataset("json", data_files=str(run / "data" / "train.jsonl"), split="train")
    assert len(loaded) == summary["records"]
    assert sorted(p.name for p in (run / "data").iterdir()) == ["dataset_info.json", "train.jsonl", "train.trl.py"]

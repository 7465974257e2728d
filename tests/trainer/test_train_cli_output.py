"""What ``sftdata train`` prints, through the installed command: ``--json`` is one JSON
object on stdout (the run's figures), and the progress bar is rich's, like every other
command's, left on stderr when the run ends."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # two subprocesses that import the training stack and train: ~2 min on a loaded 2-core machine
def test_train_json_and_the_rich_bar(tiny_model_dir, chat_file, tmp_path, sftdata_cmd):
    done = sftdata_cmd("train", chat_file, "--model", tiny_model_dir, "-o", tmp_path / "a", "--max-steps", "2",
                       "--max-length", "128", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["steps"] == 2 and out["trained_tokens"] > 0 and out["output_dir"].endswith("a")
    assert "training" not in done.stderr  # --json: no bar
    shown = sftdata_cmd("train", chat_file, "--model", tiny_model_dir, "-o", tmp_path / "b", "--max-steps", "2",
                        "--max-length", "128", timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    bar = [line for line in shown.stderr.splitlines() if line.startswith("training")]
    assert bar and "2/2 steps" in bar[-1] and "tok/s" in bar[-1]
    assert "it/s" not in shown.stderr  # not tqdm's

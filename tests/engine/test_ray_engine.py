"""The Ray engine gives the local engine's records and rejects, on a real Ray cluster.

Marked ``integration``: each test needs a Ray cluster (the session's ``ray start --head``
node, or a local one started by ``sftdata.engine``), which takes seconds to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from sftdata.convert import read_canonical
from sftdata.rejects import default_rejects_path
from sftdata.steps.registry import get_step
from tests.engine.data import records, write_jsonl

pytestmark = pytest.mark.integration
SFTDATA = Path(sys.executable).with_name("sftdata")

RECIPE = """\
# Run: sftdata run recipe.yaml [--engine ray]
name: engines
run_dir: {run_dir}
inputs:
  - {{path: main.jsonl, name: main_in}}
steps:
  - default_filters: {{}}
  - exact_dedup: {{keep: quality, score_field: quality_score}}
  - decontaminate: {{against: [eval.jsonl], n: 8}}
  - near_dedup: {{threshold: 0.7}}
mix:
  sources:
    - {{name: main}}
    - {{path: general.jsonl, name: general, ratio: 0.25}}
  seed: 3
output: {{format: sharegpt, file: data.jsonl}}
audit: {{enabled: false}}
"""


def write_inputs(folder: Path, n: int = 3000) -> Path:
    rows = records(n, seed=1)
    write_jsonl(folder / "main.jsonl", rows)
    write_jsonl(folder / "eval.jsonl", [{"instruction": r["output"], "output": "x"} for r in rows[5:400:37]])
    write_jsonl(folder / "general.jsonl", records(600, seed=2))
    return folder / "recipe.yaml"


def run(folder: Path, run_dir: str, *extra: str, env=None, **kw) -> subprocess.CompletedProcess:
    recipe = folder / f"{run_dir}.yaml"
    recipe.write_text(RECIPE.format(run_dir=folder / run_dir), encoding="utf-8")
    return subprocess.run([str(SFTDATA), "run", str(recipe), *extra], cwd=folder, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})}, **kw)


def rejects(run_dir: Path) -> list[str]:
    """The rejects file's lines, in a canonical order (the engines write them in stage
    order, the same records with the same reasons and details)."""
    return sorted((run_dir / "rejects.jsonl").read_text(encoding="utf-8").splitlines())


def test_recipe_on_ray_equals_local(tmp_path, ray_cluster):
    write_inputs(tmp_path)
    local = run(tmp_path, "local")
    assert local.returncode == 0, local.stderr
    ray = run(tmp_path, "ray", "--engine", "ray", env={"RAY_ADDRESS": ray_cluster})
    assert ray.returncode == 0, ray.stderr
    assert "engine ray: the Ray cluster at" in ray.stderr
    assert (tmp_path / "ray" / "data.jsonl").read_bytes() == (tmp_path / "local" / "data.jsonl").read_bytes()
    assert rejects(tmp_path / "ray") == rejects(tmp_path / "local")
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray")]
    assert [s["engine"] for s in summaries] == ["local", "ray"]
    drops = [[(st["step"], st["rows_in"], st["rows_out"], st["drops"]) for st in s["stages"]] for s in summaries]
    assert drops[0] == drops[1]
    by_reason = summaries[0]["rejected_by_reason"]
    for reason in ("exact_duplicate", "near_duplicate", "contaminated", "refusal", "not_sampled"):
        assert by_reason.get(reason, 0) > 0, by_reason  # every kind of stage dropped something


@pytest.mark.parametrize("name, params", [
    ("exact_dedup", {}),
    ("exact_dedup", {"keep": "longest", "fields": "response"}),
    ("near_dedup", {}),
    ("near_dedup", {"keep": "quality", "score_field": "quality_score", "threshold": 0.5}),
    ("near_dedup", {"unit": "char", "ngram": 5, "bucket_window": 1, "fields": "prompt"}),
    ("near_dedup", {"keep": "longest", "bands": 4, "rows": 4, "num_perm": 64, "seed": 7}),
    ("default_filters", {}),
])
def test_each_step_on_a_local_ray_cluster_equals_local(tmp_path, monkeypatch, name, params):
    """In this process, on the local cluster ``sftdata.engine`` starts without
    RAY_ADDRESS (2 CPUs): kept rows, rejected rows with reason and detail, and counts."""
    from sftdata.engine import get_engine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("SFTDATA_RAY_CPUS", "2")
    monkeypatch.setenv("SFTDATA_RAY_OBJECT_STORE_MB", "300")
    write_jsonl(tmp_path / "in.jsonl", records(2500, seed=5))
    frame = read_canonical(tmp_path / "in.jsonl").frame
    local = get_step(name)(params)(frame)
    on_ray = get_engine("ray").run_step(get_step(name)(params), frame)
    assert local.rejected.height > 0
    assert on_ray.kept.equals(local.kept)
    assert on_ray.rejected.equals(local.rejected)
    assert on_ray.report.model_dump(exclude={"seconds"}) == local.report.model_dump(exclude={"seconds"})


def test_stage_commands_take_engine_ray(tmp_path, ray_cluster):
    """``sftdata dedup`` and ``filter --engine ray``: the same output file and rejects."""
    write_jsonl(tmp_path / "in.jsonl", records(2000, seed=9))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster}
    for command in ("dedup", "filter"):
        outs = {}
        for engine in ("local", "ray"):
            out = tmp_path / f"{command}-{engine}.jsonl"
            done = subprocess.run([str(SFTDATA), command, "in.jsonl", "-o", out.name, "--engine", engine],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
            assert done.returncode == 0, done.stderr
            outs[engine] = (out.read_bytes(), sorted(default_rejects_path(out).read_text().splitlines()))
        assert outs["ray"] == outs["local"]
        assert outs["local"][1], f"{command} dropped nothing"


def test_killed_ray_run_resumes_from_its_last_finished_stage(tmp_path, ray_cluster):
    write_inputs(tmp_path, n=6000)
    local = run(tmp_path, "local")
    assert local.returncode == 0, local.stderr
    recipe = tmp_path / "ray.yaml"
    recipe.write_text(RECIPE.format(run_dir=tmp_path / "ray"), encoding="utf-8")
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(SFTDATA), "run", str(recipe), "--engine", "ray"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stages = tmp_path / "ray" / "stages"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(stages.glob("01-default_filters-*/frame.parquet")):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "ray" / "summary.json").exists(), "the run finished before the kill"
    finished = sorted(p.parent.name for p in stages.glob("*/frame.parquet"))

    again = subprocess.run([str(SFTDATA), "run", str(recipe), "--engine", "ray"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    stages_run = json.loads((tmp_path / "ray" / "summary.json").read_text())["stages"]
    cached = [s["step"] for s in stages_run if s["cached"]]
    assert len(cached) == len(finished) and cached[:2] == ["read:main_in", "default_filters"]
    assert not all(s["cached"] for s in stages_run)
    assert (tmp_path / "ray" / "data.jsonl").read_bytes() == (tmp_path / "local" / "data.jsonl").read_bytes()
    assert rejects(tmp_path / "ray") == rejects(tmp_path / "local")

"""The installed ``sftdata`` command: score, select, and a recipe with both; the audit
shows every score."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sftdata.audit import compute_stats, render_html
from sftdata.records import frame_from_records

from .helpers import PAIRS, records

pytest.importorskip("torch")


def sftdata(*args, env=None) -> subprocess.CompletedProcess:
    exe = shutil.which("sftdata") or str(Path(sys.executable).parent / "sftdata")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def alpaca_rows():
    return [{"instruction": p, "output": r} for p, r in PAIRS]


def test_score_then_select_from_the_command_line(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "in.jsonl", alpaca_rows())
    done = sftdata("score", "perplexity", data, "-o", tmp_path / "scored.jsonl", "--to", "canonical",
                   "--set", f"model={tiny_model_dir}", "--set", "progress=false", "--set", "max_length=64")
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert all(r["meta"]["perplexity"] > 1 for r in scored)
    done = sftdata("select", tmp_path / "scored.jsonl", "-o", tmp_path / "best.jsonl", "--by", "perplexity",
                   "--top", 2, "--lowest")
    assert done.returncode == 0, done.stderr
    best = [json.loads(line) for line in (tmp_path / "best.jsonl").read_text().splitlines()]
    want = sorted(r["meta"]["perplexity"] for r in scored)[:2]
    assert sorted(r["meta"]["perplexity"] for r in best) == want
    rejects = [json.loads(line) for line in (tmp_path / ".rejects" / "best.rejects.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejects} == {"not_selected"} and len(rejects) == len(PAIRS) - 2
    assert all(r["detail"]["scores"]["perplexity"] == r["record"]["meta"]["perplexity"] for r in rejects)
    bad = sftdata("select", tmp_path / "scored.jsonl", "-o", tmp_path / "x.jsonl", "--by", "perplexity")
    assert bad.returncode == 2 and "exactly one of top or fraction" in bad.stderr


def test_recipe_scores_selects_and_audits(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "domain.jsonl", alpaca_rows())
    (tmp_path / "recipe.yaml").write_text(f"""\
# Run: sftdata run recipe.yaml
name: select-test
run_dir: {tmp_path / 'run'}
inputs:
  - {{path: domain.jsonl, name: domain}}
steps:
  - ifd: {{model: {tiny_model_dir}, max_length: 64, progress: false}}
  - select: {{by: ifd, fraction: 0.5}}
output: {{format: openai, file: data.jsonl}}
""")
    done = sftdata("run", tmp_path / "recipe.yaml")
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    kept = [json.loads(line) for line in (run / "data.jsonl").read_text().splitlines()]
    assert len(kept) == 3
    rejects = [json.loads(line) for line in (run / "rejects.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rejects] == ["select"] * 3
    stats = json.loads((run / "stats.json").read_text())
    assert [s["key"] for s in stats["scores"]["scores"]] == ["ifd"]
    again = sftdata("run", tmp_path / "recipe.yaml")
    assert again.returncode == 0 and again.stderr.count("(cached)") >= 2, again.stderr


def test_audit_shows_every_score_per_source_with_extremes_and_a_scatter():
    recs = records(meta=[{"ifd": 0.1 * i, "judge": 5 - i % 3, "category": "x"} for i in range(len(PAIRS))])
    for i, r in enumerate(recs):
        r["source"] = "a" if i % 2 else "b"
    stats = compute_stats(frame_from_records(recs))
    section = stats["scores"]
    assert [s["key"] for s in section["scores"]] == ["ifd", "judge"]
    ifd = section["scores"][0]
    assert [row["source"] for row in ifd["by_source"]] == ["a", "b"]
    assert sum(sum(row["counts"]) for row in ifd["by_source"]) == len(PAIRS) == sum(ifd["counts"])
    assert ifd["top"][0]["score"] == pytest.approx(0.5) and ifd["bottom"][0]["score"] == 0.0
    assert section["pairs"][0]["x"] == "ifd" and len(section["pairs"][0]["points"]) == len(PAIRS)
    html = render_html(stats)
    assert 'id="plot-score-ifd"' in html and 'id="plot-scatter-0"' in html
    empty = compute_stats(frame_from_records(records()))
    assert empty["scores"]["available"] is False

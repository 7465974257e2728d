"""``sftdata run`` with hostile or mistaken recipes, through the installed command: it
deletes only what it made, writes only inside its run directory, and ``--check`` finds
every missing or misplaced thing (with its line) before any stage runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.safety.helpers import assert_one_line_error, write_alpaca

BASE = """\
name: safe
run_dir: {run_dir}
inputs:
  - {{path: domain.jsonl, name: domain}}
steps:
  - exact_dedup: {{fields: {fields}}}
"""


def _recipe(folder: Path, text: str) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _setup(tmp_path: Path, fields: str = "both") -> Path:
    write_alpaca(tmp_path / "domain.jsonl", n=6)
    write_alpaca(tmp_path / "general.jsonl", n=10, start=50)
    return _recipe(tmp_path, BASE.format(run_dir=tmp_path / "run", fields=fields))


def test_pruning_stages_keeps_folders_sftdata_did_not_make(tmp_path, sftdata_cmd):
    _setup(tmp_path)
    first = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    stages = tmp_path / "run" / "stages"
    notes = stages / "my_notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    old = {p.name for p in stages.iterdir()} - {"my_notes"}
    changed = sftdata_cmd("run", "recipe.yaml", "--set", "steps.0.exact_dedup.fields=prompt", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    now = {p.name for p in stages.iterdir()}
    assert (notes / "todo.txt").read_text() == "keep me"
    assert "my_notes" in now and any(name not in now for name in old)  # the stale stage went


def test_an_existing_train_folder_sftdata_did_not_make_is_not_deleted(tmp_path, tiny_model_dir, sftdata_cmd):
    recipe = _setup(tmp_path)
    assert sftdata_cmd("run", "recipe.yaml", cwd=tmp_path).returncode == 0
    precious = tmp_path / "run" / "train" / "precious"
    precious.mkdir(parents=True)
    (precious / "weights.bin").write_bytes(b"\x00" * 16)
    recipe.write_text(recipe.read_text() + f"train: {{model: {tiny_model_dir}, max_steps: 1, progress: false, "
                      "num_samples: 0}\n", encoding="utf-8")
    proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path, timeout=300)
    assert_one_line_error(proc, 2, contains="sftdata did not make it")
    assert (precious / "weights.bin").read_bytes() == b"\x00" * 16


@pytest.mark.parametrize("edit, where, message", [
    ("output: {file: /tmp/sftdata-escape.jsonl}", 7, "relative path inside the run directory"),
    ("output: {file: ../escape.jsonl}", 7, "relative path inside the run directory"),
    ("output: {file: rejects.jsonl}", 7, "a name the run itself writes"),
    ("output: {file: data.txt}", 7, "unknown extension"),
    ("output: {format: chatml}", 7, "unknown format 'chatml'"),
])
def test_outputs_stay_inside_the_run_directory(tmp_path, sftdata_cmd, edit, where, message):
    recipe = _setup(tmp_path)
    recipe.write_text(recipe.read_text() + edit + "\n", encoding="utf-8")
    for args in (["--check"], []):
        proc = sftdata_cmd("run", "recipe.yaml", *args, cwd=tmp_path)
        line = assert_one_line_error(proc, 2, contains=message)
        assert f"recipe.yaml:{where}:" in line
    assert not (tmp_path / "escape.jsonl").exists() and not Path("/tmp/sftdata-escape.jsonl").exists()
    assert not (tmp_path / "run").exists()  # nothing ran


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_the_name_is_a_plain_name(tmp_path, sftdata_cmd, name):
    write_alpaca(tmp_path / "domain.jsonl")
    _recipe(tmp_path, f"name: '{name}'\ninputs:\n  - {{path: domain.jsonl}}\n")
    proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="must be a plain name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domain.jsonl", "recipe.yaml"]


def test_a_run_directory_holding_other_files_is_refused(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "domain.jsonl")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.jsonl").write_text("my own data\n")
    _recipe(tmp_path, f"name: x\nrun_dir: {mine}\ninputs:\n  - {{path: domain.jsonl}}\n")
    proc = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    line = assert_one_line_error(proc, 2, contains="files sftdata did not make")
    assert "recipe.yaml:2:" in line
    assert (mine / "data.jsonl").read_text() == "my own data\n" and len(list(mine.iterdir())) == 1


def test_check_finds_every_missing_or_misplaced_file_with_its_line(tmp_path, sftdata_cmd):
    (tmp_path / "folder_input.jsonl").mkdir()
    (tmp_path / "run_file").write_text("not a folder")
    _recipe(tmp_path, """\
name: check
run_dir: run_file
inputs:
  - {path: missing.jsonl}
  - {path: folder_input.jsonl}
  - {generate: {num: 2, seeds: no_seeds.jsonl}}
steps:
  - decontaminate: {against: [no_eval.jsonl]}
mix:
  sources:
    - {name: main}
    - {path: no_general.jsonl}
""")
    proc = sftdata_cmd("run", "recipe.yaml", "--check", cwd=tmp_path)
    assert "Traceback" not in proc.stderr and proc.returncode == 2
    expected = [(4, "input"), (5, "is a directory"), (6, "seeds"), (8, "against"), (12, "mix source")]
    for line, text in expected:
        assert any(f"recipe.yaml:{line}:" in ln and text in ln for ln in proc.stderr.splitlines()), (line, proc.stderr)
    assert "run directory" not in proc.stderr or "is a file" in proc.stderr
    # The run directory problem is reported too once the inputs are fixed.
    _recipe(tmp_path, "name: check\nrun_dir: run_file\ninputs:\n  - {path: folder_input.jsonl/../recipe.yaml}\n")
    proc = sftdata_cmd("run", "recipe.yaml", "--check", cwd=tmp_path)
    line = assert_one_line_error(proc, 2, contains="is a file")
    assert "recipe.yaml:2:" in line


def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path, sftdata_cmd):
    write_alpaca(tmp_path / "domain.jsonl")
    _recipe(tmp_path, "name: twice\ninputs:\n  - {path: domain.jsonl}\nsteps:\n  - exact_dedup: {}\n"
                      "steps:\n  - refusal: {}\n")
    proc = sftdata_cmd("run", "recipe.yaml", "--check", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains="recipe.yaml:6: key 'steps' given twice (first at line 4)")


def test_check_passes_a_good_recipe_and_then_the_run_works(tmp_path, sftdata_cmd):
    _setup(tmp_path)
    check = sftdata_cmd("run", "recipe.yaml", "--check", cwd=tmp_path)
    assert check.returncode == 0 and "ok" in check.stderr, check.stderr
    assert not (tmp_path / "run").exists()
    done = sftdata_cmd("run", "recipe.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / ".made-by-sftdata").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["records"] == 6


@pytest.mark.parametrize("text, contains", [
    ("&a [*a]\n", "a recipe is a YAML mapping"),
    ("name: x\ninputs: &a [*a]\n", "recipe.yaml:2:"),
    ("name: !!python/object/apply:os.system ['touch PWNED']\ninputs: []\n", "not valid YAML"),
    ("name: x\ninputs:\n  - {path: a.jsonl, path: b.jsonl}\n", "key 'path' given twice"),
])
def test_hostile_yaml_is_one_line(tmp_path, sftdata_cmd, text, contains):
    _recipe(tmp_path, text)
    proc = sftdata_cmd("run", "recipe.yaml", "--check", cwd=tmp_path)
    assert_one_line_error(proc, 2, contains=contains)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("recipe", sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_recipe_passes_the_full_check(tmp_path, sftdata_cmd, recipe):
    proc = sftdata_cmd("run", recipe, "--check", cwd=tmp_path)
    assert proc.returncode == 0 and ": ok (" in proc.stderr, proc.stderr

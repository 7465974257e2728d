"""Choosing the engine: the recipe key, the --engine option, and the errors (fast: no
cluster is started here)."""

from __future__ import annotations

import sys

import pytest

from sftdata.engine import LocalEngine, get_engine
from sftdata.errors import UserError
from sftdata.recipe import load_recipe

RECIPE = "name: t\ninputs:\n  - {path: in.jsonl}\nengine: %s\n"


def test_recipe_engine_is_validated_with_its_line(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE % "ray")
    assert load_recipe(path).engine == "ray"
    path.write_text(RECIPE % "spark")
    with pytest.raises(UserError, match=r"r.yaml:4: engine: .*'local' or 'ray'"):
        load_recipe(path)


def test_unknown_engine_option_is_one_line(cli, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    done = cli("dedup", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--engine", "spark")
    assert done.exit_code != 0
    assert "unknown engine 'spark'; use one of local, ray" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_local_engine_runs_the_step_itself():
    assert isinstance(get_engine("local"), LocalEngine)


def test_ray_engine_without_ray_installed_says_how_to_install(monkeypatch):
    from sftdata.engine.ray_cluster import connect

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserError, match=r"pip install 'sftdata\[ray\]'"):
        connect()

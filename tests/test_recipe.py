"""Recipe validation: unknown keys and bad values name the key and the line; --set works;
every recipe shipped in recipes/ validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftdata.errors import UserError
from sftdata.recipe import apply_overrides, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_names_the_key_and_its_line(tmp_path):
    path = write(tmp_path, "name: x\ninputs:\n  - path: a.jsonl\n    formatt: alpaca\n")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}:4: unknown key 'formatt' in inputs[0]"


def test_bad_value_inside_the_mix_names_its_line(tmp_path):
    path = write(tmp_path, "name: x\ninputs:\n  - path: a.jsonl\nmix:\n  sources:\n    - name: main\n      ratio: 3\n")
    with pytest.raises(UserError, match=r"recipe.yaml:7: mix.sources\[0\].ratio: "):
        load_recipe(path)


def test_input_needs_a_path_or_a_generate_block(tmp_path):
    path = write(tmp_path, "name: x\ninputs:\n  - name: nothing\n")
    with pytest.raises(UserError, match="exactly one of `path` or `generate`"):
        load_recipe(path)


def test_train_block_is_checked_against_the_trainer_config(tmp_path):
    path = write(tmp_path, "name: x\ninputs:\n  - path: a.jsonl\ntrain:\n  max_step: 3\n")
    with pytest.raises(UserError, match=r"recipe.yaml:5: unknown key 'max_step' in train"):
        load_recipe(path)
    owned = write(tmp_path, "name: x\ninputs:\n  - path: a.jsonl\ntrain:\n  output_dir: o\n")
    with pytest.raises(UserError, match="set by `sftdata run`"):
        load_recipe(owned)


def test_overrides_edit_nested_values():
    data = {"inputs": [{"generate": {"num": 10}}], "train": {"max_steps": 50}}
    apply_overrides(data, ["inputs.0.generate.num=3", "train.max_steps=5", "audit.samples=0"])
    assert data == {"inputs": [{"generate": {"num": 3}}], "train": {"max_steps": 5}, "audit": {"samples": 0}}
    with pytest.raises(UserError, match="has no item 4"):
        apply_overrides(data, ["inputs.4.path=x"])


def test_invalid_yaml_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"recipe.yaml:\d+: not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed\n"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_shipped_recipes_validate_and_say_how_to_run_them(recipe):
    assert recipe.read_text(encoding="utf-8").startswith(f"# Run: sftdata run recipes/{recipe.name}")
    load_recipe(recipe)


def test_there_are_shipped_recipes():
    assert {"quickstart.yaml", "full_example.yaml"} <= {r.name for r in RECIPES}

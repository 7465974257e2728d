"""Everything ``sftdata run`` checks before its first stage runs (``run --check`` is this).

A recipe that validates (``sftdata.recipe``) can still point at things that are not
there, and finding out after an hour of generation is too late. ``check_run`` looks at
every file the recipe reads and at the run directory it will write, and reports every
problem at once, each with its recipe line:

* inputs, mix sources and the files steps read (evaluation sets, term lists, filter
  configs) exist and are files;
* generation's ``seeds`` and ``template_dir``, the trainer's ``chat_template`` and
  ``eval_data`` exist;
* the run directory is not a file, can be written, and is new, empty or one sftdata
  made (it holds ``.made-by-sftdata``): a run never writes among files it did not make;
* ``output.file`` does not take the name of something the run writes itself.

Every path in a recipe is relative to the recipe's folder (absolute paths stay as
they are), except ``run_dir``, which is relative to the current folder.
"""

from __future__ import annotations

from pathlib import Path

from sftdata.errors import UserError
from sftdata.ownership import MARKER, folder_is_ours
from sftdata.paths import Target, check_targets
from sftdata.recipe import Recipe

LOCK_NAME = ".sftdata.lock"
# What a run writes in its run directory besides output.file.
RUN_ENTRIES = ("rejects.jsonl", "summary.json", "report.html", "stats.json", "train.json",
               ".audit.key", "stages", "generate", "train", MARKER, LOCK_NAME)
# Generation and trainer options naming files, resolved against the recipe's folder.
GENERATE_PATHS = ("seeds", "template_dir")
TRAIN_PATHS = ("chat_template", "eval_data")


def run_dir_of(recipe: Recipe) -> Path:
    """The run directory: ``run_dir``, else ``runs/<name>``."""
    return Path(recipe.run_dir) if recipe.run_dir else Path("runs") / recipe.name


def in_recipe_folder(base: Path, value: str | Path) -> Path:
    """A recipe path made usable: relative ones are taken from the recipe's folder."""
    return base / Path(value).expanduser()


def _problem(loc: tuple, msg: str) -> dict:
    return {"loc": loc, "type": "value_error", "msg": msg}


def _file_problem(path: Path, loc: tuple, what: str, folder: bool = False) -> dict | None:
    if not path.exists():
        return _problem(loc, f"{what} {path} not found")
    if folder and not path.is_dir():
        return _problem(loc, f"{what} {path} is not a folder")
    if not folder and path.is_dir():
        return _problem(loc, f"{what} {path} is a directory, not a file")
    return None


def _read_problems(recipe: Recipe, base: Path) -> list[dict]:
    from sftdata.steps.registry import all_steps

    problems: list[dict | None] = []
    for i, spec in enumerate(recipe.inputs):
        if spec.path is not None:
            problems.append(_file_problem(in_recipe_folder(base, spec.path), ("inputs", i, "path"), "input"))
        for key in GENERATE_PATHS:
            value = (spec.generate or {}).get(key)
            if value is not None:
                problems.append(_file_problem(in_recipe_folder(base, value), ("inputs", i, "generate", key),
                                              key, folder=key == "template_dir"))
    for i, source in enumerate(recipe.mix.sources if recipe.mix else []):
        if source.path is not None:
            problems.append(_file_problem(in_recipe_folder(base, source.path), ("mix", "sources", i, "path"),
                                          "mix source"))
    steps = all_steps()
    for i, (name, params) in enumerate(recipe.step_list()):
        for key in steps[name].path_params:
            value = params.get(key)
            for item in (value if isinstance(value, list) else [value] if value is not None else []):
                problems.append(_file_problem(in_recipe_folder(base, item), ("steps", i, name, key), key))
    for key in TRAIN_PATHS:
        value = (recipe.train or {}).get(key)
        if value is not None:
            problems.append(_file_problem(in_recipe_folder(base, value), ("train", key), key))
    return [p for p in problems if p is not None]


def _run_dir_problems(recipe: Recipe, run_dir: Path) -> list[dict]:
    where = ("run_dir",) if recipe.run_dir else ("name",)
    if run_dir.exists() and not run_dir.is_dir():
        return [_problem(where, f"the run directory {run_dir} is a file")]
    if run_dir.is_dir() and not folder_is_ours(run_dir) and any(run_dir.iterdir()):
        return [_problem(where, f"the run directory {run_dir} already holds files sftdata did not make "
                                f"(it has no {MARKER}); choose a new or empty folder with `run_dir`")]
    try:
        check_targets([Target("run_dir", run_dir, "folder", replaces=False)])
    except UserError as exc:
        return [_problem(where, str(exc))]
    problems = []
    first = Path(recipe.output.file).parts[0]
    if first in RUN_ENTRIES:
        problems.append(_problem(("output", "file"), f"{first!r} is a name the run itself writes "
                                                     "in the run directory; choose another"))
    elif (run_dir / recipe.output.file).is_dir():
        problems.append(_problem(("output", "file"), f"{run_dir / recipe.output.file} is a directory"))
    return problems


def check_run(recipe: Recipe, recipe_path: str | Path) -> Path:
    """Check what the recipe reads and where it writes; returns the run directory.

    Raises one ``UserError`` listing every problem found, each with its recipe line.
    """
    base = Path(recipe_path).resolve().parent
    run_dir = run_dir_of(recipe)
    problems = _read_problems(recipe, base) + _run_dir_problems(recipe, run_dir)
    if problems:
        raise UserError(recipe.errors_at(problems))
    return run_dir

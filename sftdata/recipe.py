"""The YAML recipe: the whole build (inputs, steps, mix, output, audit) and optional training.

A recipe is validated before anything runs. Every mistake is reported as
``recipe.yaml:LINE: where: what`` (unknown keys included, with the keys that are
allowed), so a typo never falls back to a default silently. ``--set key=value`` edits
the parsed YAML before validation (``--set train.max_steps=5``,
``--set inputs.0.generate.num=4``); values are parsed as YAML.

Shape::

    name: quickstart
    inputs:                       # files in any format, or a generate block
      - {path: data/domain.jsonl, name: domain}
      - {generate: {num: 12}, name: self_instruct}
    steps:                        # registered step name -> params (`sftdata steps`)
      - default_filters: {}
      - exact_dedup: {}
    mix: {sources: [{name: main}, {path: general.jsonl, ratio: 0.25}], seed: 0}
    output: {format: sharegpt, file: data.jsonl}
    engine: local                 # or ray (the same stages on a Ray cluster, same output)
    train: {max_steps: 20}        # sftdata.trainer.TrainConfig (data/output_dir are set by the run)

Where a run writes: everything goes inside its run directory, ``runs/<name>`` unless
``run_dir`` names another (absolute, or relative to the current folder: choosing it is
the explicit opt-out). ``name`` is a plain name and ``output.file`` a relative path
inside the run directory (no ``..``, not absolute). A key given twice is an error.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from sftdata.errors import UserError
from sftdata.formats import FORMAT_NAMES, check_format
from sftdata.io import extension
from sftdata.steps.mix_recipe import MixParams


class InputSpec(BaseModel):
    """One input: a data file, or a Self-Instruct ``generate`` block."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(default=None, description="Data file, relative to the recipe's folder.")
    format: str | None = Field(default=None, description="Input format (default: detected from the columns).")
    name: str | None = Field(default=None, description="Source name given to its records (default: file stem, or `self_instruct`).")
    generate: dict[str, Any] | None = Field(
        default=None, description="Self-Instruct generation options (those of `sftdata generate`).")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of `path` or `generate`")
        if self.format is not None and self.format not in FORMAT_NAMES:
            raise ValueError(f"unknown format {self.format!r}; use one of {', '.join(FORMAT_NAMES)}")
        return self

    def source_name(self) -> str:
        return self.name or (Path(self.path).stem if self.path else "self_instruct")


class OutputSpec(BaseModel):
    """Where and how the built data set is written (inside the run directory)."""

    model_config = ConfigDict(extra="forbid")
    format: str = Field(default="sharegpt", description=f"One of {', '.join(FORMAT_NAMES)}.")
    file: str = Field(default="data.jsonl", description="File name inside the run directory (a relative "
                      "path, no `..`); its extension picks json/jsonl/parquet/csv.")
    emit: list[Literal["llamafactory", "axolotl", "trl"]] = Field(
        default_factory=list, description="Loader configs to write beside the data (as `sftdata convert "
        "--emit`): llamafactory (dataset_info.json), axolotl (<stem>.axolotl.yaml), trl (<stem>.trl.py).")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        try:
            return check_format(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("file")
    @classmethod
    def _inside_run_dir(cls, value: str) -> str:
        parts = PurePath(value).parts
        if not value or PurePath(value).is_absolute() or ".." in parts or "\\" in value:
            raise ValueError(f"{value!r} must be a relative path inside the run directory (no `..`, "
                             "not absolute); choose the folder with `run_dir`")
        try:
            extension(value)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return value


class AuditSpec(BaseModel):
    """The audit report written at the end of the build."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Write report.html and stats.json.")
    samples: int = Field(default=5, ge=0, description="Random samples shown in the report.")


class Recipe(BaseModel):
    """A whole build, then optional training."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name of the run; the default run directory is runs/<name>.")
    run_dir: str | None = Field(default=None, description="Run directory (relative to the current folder).")
    inputs: list[InputSpec] = Field(min_length=1, description="Files and generate blocks, read in order.")
    steps: list[dict[str, dict[str, Any] | None]] = Field(
        default_factory=list, description="Registered steps in order: `- step_name: {params}`.")
    mix: MixParams | None = Field(default=None, description="Mix the built records (source `main`) with other files.")
    engine: Literal["local", "ray"] = Field(
        default="local", description="Where the data stages compute: this process (local) or a Ray "
        "cluster (ray: RAY_ADDRESS, or a local cluster; needs `pip install 'sftdata[ray]'`). Same output.")
    output: OutputSpec = Field(default_factory=OutputSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    train: dict[str, Any] | None = Field(
        default=None, description="Trainer options (`sftdata train`); leave out to only build data.")
    # The file it was read from and its YAML tree, for `recipe.yaml:LINE:` in later errors.
    _source: tuple[str, Any] = PrivateAttr(default=("recipe", None))

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.strip() or value in (".", "..") or any(c in value for c in "/\\\0"):
            raise ValueError(f"{value!r} must be a plain name (it names the folder runs/<name>): "
                             "no `/`, not `.` or `..`; choose another folder with `run_dir`")
        return value

    def step_list(self) -> list[tuple[str, dict]]:
        return [(name, params or {}) for item in self.steps for name, params in item.items()]

    def errors_at(self, errors: list[dict]) -> str:
        """``errors`` ({loc, type, msg}) as ``recipe.yaml:LINE: where: what`` lines."""
        path, root = self._source
        return _format_errors(path, root, errors)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` edits (value parsed as YAML) to the raw recipe dict."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: use key.path=value")
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"--set {item!r}: {'.'.join(parts[:i])} has no item {part}")
                part = int(part)
            elif not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {'.'.join(parts[:i])} is not a mapping")
            if last:
                node[part] = yaml.safe_load(raw)
            else:
                if isinstance(node, dict) and node.get(part) is None:
                    node[part] = {}
                node = node[part]
    return data


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of the deepest parent found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "recipe"


def _format_errors(path: str, root: yaml.Node | None, errors: list[dict], limit: int = 8) -> str:
    lines = []
    for err in errors[:limit]:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "dict["))))
        line = _line_of(root, loc)
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} in {_where(loc[:-1])}"
        else:
            msg = f"{_where(loc)}: {err['msg']}"
        lines.append(f"{path}:{line or '?'}: {msg}")
    if len(errors) > limit:
        lines.append(f"{path}: ... and {len(errors) - limit} more")
    return "\n".join(lines)


def validate_parts(recipe: Recipe) -> list[dict]:
    """Check steps, generate blocks and the train block against their own models."""
    from sftdata.steps.registry import all_steps

    errors: list[dict] = []
    steps = all_steps()
    for i, item in enumerate(recipe.steps):
        if len(item) != 1:
            errors.append({"loc": ("steps", i), "type": "value_error",
                           "msg": "each step is one `name: {params}` mapping"})
            continue
        ((name, params),) = item.items()
        if name not in steps:
            errors.append({"loc": ("steps", i, name), "type": "value_error",
                           "msg": f"unknown step; known: {', '.join(steps)}"})
            continue
        try:
            steps[name].Params.model_validate(params or {})
        except ValidationError as exc:
            errors += [{**e, "loc": ("steps", i, name, *e["loc"])} for e in exc.errors()]
    for i, spec in enumerate(recipe.inputs):
        if spec.generate is not None:
            from sftdata.generate import GenerateConfig

            for key in ("output", "rejects", "overwrite"):
                if key in spec.generate:
                    errors.append({"loc": ("inputs", i, "generate", key), "type": "value_error",
                                   "msg": "set by `sftdata run` (the run directory's generate/ folder)"})
            try:
                GenerateConfig.model_validate({"output": "x.jsonl", **spec.generate})
            except ValidationError as exc:
                errors += [{**e, "loc": ("inputs", i, "generate", *e["loc"])} for e in exc.errors()]
    if recipe.train is not None:
        from sftdata.trainer import TrainConfig

        for key in ("data", "output_dir"):
            if key in recipe.train:
                errors.append({"loc": ("train", key), "type": "value_error",
                               "msg": "set by `sftdata run` (the built data and the run directory)"})
        try:
            TrainConfig.model_validate({"data": "x", "output_dir": "x", **recipe.train})
        except ValidationError as exc:
            errors += [{**e, "loc": ("train", *e["loc"])} for e in exc.errors()
                       if e["loc"][:1] not in (("data",), ("output_dir",))]
    return errors


def duplicate_keys(path: str, node: yaml.Node | None, _seen: set[int] | None = None) -> list[str]:
    """``path:LINE: key 'k' given twice (first at line N)`` for every mapping in the tree
    that names a key twice (YAML loaders silently keep the last one). Aliases are
    visited once (``&a [*a]`` refers to itself)."""
    seen = set() if _seen is None else _seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and key.value in first:
                problems.append(f"{path}:{line}: key {key.value!r} given twice (first at line {first[key.value]})")
            elif isinstance(key, yaml.ScalarNode):
                first[key.value] = line
            problems += duplicate_keys(path, value, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems += duplicate_keys(path, item, seen)
    return problems


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; every problem is a ``UserError`` with its line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such recipe file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    twice = duplicate_keys(str(path), root)
    if twice:
        raise UserError("\n".join(twice[:5]))
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping")
    data = apply_overrides(data, overrides or [])
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_errors(str(path), root, exc.errors())) from None
    recipe._source = (str(path), root)
    errors = validate_parts(recipe)
    if errors:
        raise UserError(recipe.errors_at(errors))
    return recipe

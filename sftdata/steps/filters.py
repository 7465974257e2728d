"""The filter steps, the default filter set, and the runner that applies a list of steps.

The filter classes live in ``filters_text`` (length, empty turns, echo, markup,
encoding, symbols), ``filters_repetition`` (Gopher repetition) and ``filters_content``
(refusals, language, blocklist, regex, Self-Instruct); importing this module registers
them all. ``run_steps`` (over ``sftdata.steps.base.run_chain``) runs a list of steps.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sftdata.errors import UserError
from sftdata.rejects import rejects_from_frame
from sftdata.steps import filters_content, filters_repetition, filters_text  # noqa: F401 - registers
from sftdata.steps.base import REASON, Filter, Step, StepReport, Texts, run_chain
from sftdata.steps.registry import build_step, register

DEFAULT_CONFIG = "default_filters.yaml"


class StepSpec(BaseModel):
    """One entry of a filter config: a registered step name and its params."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Registered step name (see `sftdata steps`).")
    params: dict = Field(default_factory=dict, description="The step's params.")


class FilterConfig(BaseModel):
    """A filter config file: the steps to run, in order."""

    model_config = ConfigDict(extra="forbid")
    steps: list[StepSpec] = Field(description="Steps to run, in order.")


OLD_GRAMMAR_NOTE = ("uses the old `- name: x` / `params:` step entries; write them as in recipes, "
                    "`- x: {params}` (the old form still works)")


def _entry(item):
    """A step entry in the recipe grammar (``x`` or ``{x: params}``) as a ``StepSpec`` dict."""
    if isinstance(item, str):
        return {"name": item}
    if isinstance(item, dict) and len(item) == 1 and "name" not in item:
        (name, params), = item.items()
        return {"name": name, "params": params or {}}
    return item  # the old grammar ({name, params}), or something the model rejects


def steps_from_config(data: dict, where: str = "config", note=None) -> list[Step]:
    """Build the steps a parsed config names; a one-line error on any bad entry.

    Entries use the recipes' grammar (``- exact_dedup: {}``); the old ``- name: x`` /
    ``params: {...}`` form is read too, and ``note`` (if given) is told it is deprecated.
    """
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        if note and any(isinstance(s, dict) and "name" in s for s in data["steps"]):
            note(f"{where}: {OLD_GRAMMAR_NOTE}")
        data = {**data, "steps": [_entry(s) for s in data["steps"]]}
    try:
        config = FilterConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{where}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    steps = []
    for spec in config.steps:
        try:
            steps.append(build_step(spec.name, spec.params))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(map(str, err["loc"]))
            raise UserError(f"{where}: step {spec.name!r}: {loc}: {err['msg']}") from None
    return steps


def load_filter_config(path: str | os.PathLike, note=None) -> list[Step]:
    """The steps of a YAML filter config file (see ``sftdata/data/default_filters.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return steps_from_config(data, str(path), note)


def default_filter_steps() -> list[Step]:
    """The default filter set (the packaged ``default_filters.yaml``)."""
    body = resources.files("sftdata.data").joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")
    return steps_from_config(yaml.safe_load(body), DEFAULT_CONFIG)


def run_steps(
    frame: pl.DataFrame, steps: list[Step], texts: Texts | None = None
) -> tuple[pl.DataFrame, list[dict], list[StepReport]]:
    """Run ``steps`` in order: (kept frame, reject entries, one report per step).

    The prompt and response texts are computed once (``run_chain``) and handed to
    every filter.
    """
    result = run_chain(frame, steps, texts)
    rejects = [r for name, rejected in result.rejected for r in rejects_from_frame(rejected, name)]
    return result.kept, rejects, result.reports


def refusal_mask(responses: pl.Series) -> pl.Series:
    """True for each response holding a refusal or AI-boilerplate phrase (for the audit)."""
    from sftdata.steps.filters_content import RefusalFilter

    texts = Texts.of_texts(pl.repeat("", len(responses), eager=True, dtype=pl.String), responses)
    return RefusalFilter().reasons(texts.frame, texts).is_not_null()


class DefaultFiltersParams(BaseModel):
    """A filter config to run as one step."""

    model_config = ConfigDict(extra="forbid")
    config: str | None = Field(None, description="YAML filter config file; default: the packaged default set.")


_ROW = "_filter_row"


@register
class DefaultFilters(Filter):
    """The whole filter set (default or from a config) as one step, for recipes; each
    reject keeps the reason code of the filter that dropped it."""

    name = "default_filters"
    Params = DefaultFiltersParams
    path_params = ("config",)

    def steps(self) -> list[Step]:
        return load_filter_config(self.params.config) if self.params.config else default_filter_steps()

    def reasons(self, frame: pl.DataFrame, texts: Texts) -> pl.Series:
        """Each row's reason: that of the first filter of the set that drops it."""
        result = run_chain(frame.with_row_index(_ROW), self.steps(), texts)
        reasons = pl.Series(REASON, [None] * frame.height, dtype=pl.String)
        for _, rejected in result.rejected:
            if rejected.height:
                reasons = reasons.scatter(rejected[_ROW], rejected[REASON])
        return reasons

"""One registry from step names to step classes; recipes and the CLI name steps by key.

Step modules register their classes with ``@register`` when imported; the registry
imports the modules listed in ``STEP_MODULES`` the first time it is asked.
"""

from __future__ import annotations

import importlib

from sftdata.errors import UserError
from sftdata.steps.base import Step

STEP_MODULES = (
    "sftdata.steps.filters",
    "sftdata.steps.filters_text",
    "sftdata.steps.filters_repetition",
    "sftdata.steps.filters_content",
    "sftdata.steps.language",
    "sftdata.steps.dedup",
    "sftdata.steps.decontam",
    "sftdata.steps.score_lm",
    "sftdata.steps.score_judge",
    "sftdata.steps.score_reward",
    "sftdata.steps.semantic_dedup",
    "sftdata.steps.select",
)

_REGISTRY: dict[str, type[Step]] = {}
_loaded = False


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step available under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"step name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in STEP_MODULES:
            importlib.import_module(module)
        _loaded = True


def all_steps() -> dict[str, type[Step]]:
    """Every registered step, by name, sorted."""
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_step(name: str) -> type[Step]:
    """The step class registered as ``name``; a one-line error names the known steps."""
    steps = all_steps()
    if name not in steps:
        raise UserError(f"unknown step {name!r}; known steps: {', '.join(steps)}")
    return steps[name]


def build_step(name: str, params: dict | None = None) -> Step:
    """Instantiate a registered step with validated params."""
    return get_step(name)(params or {})

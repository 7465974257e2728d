"""The audit's only contact with the cleaning steps: small adapters over sftdata.steps.

Filters, dedup, refusal phrases and language detection live in ``sftdata.steps``; the
audit runs them in dry-run (it reads their verdicts and keeps every record). Each
adapter returns what the audit needs or raises ``Unavailable`` with the reason, and the
report then shows the section as "not available" instead of numbers it cannot back.
"""

from __future__ import annotations

import importlib

import polars as pl

from sftdata.errors import UserError
from sftdata.steps.base import Step


class Unavailable(Exception):
    """A section cannot be computed because a step module is missing."""


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{name} is not installed ({exc})") from None


def _attr(module_name: str, attr: str):
    module = _module(module_name)
    if not hasattr(module, attr):
        raise Unavailable(f"{module_name} has no {attr}()")
    return getattr(module, attr)


def dedup_steps() -> tuple[Step, Step]:
    """(exact dedup, near dedup) with their default params."""
    dedup = _module("sftdata.steps.dedup")
    return dedup.ExactDedup(), dedup.NearDedup()


def default_filters() -> list[Step]:
    """The default filter set, as ``sftdata filter`` runs it without a config."""
    return list(_attr("sftdata.steps.filters", "default_filter_steps")())


def refusal_mask(responses: pl.Series) -> pl.Series:
    """True for each response that contains a refusal or AI-boilerplate phrase."""
    return _attr("sftdata.steps.filters", "refusal_mask")(responses)


def detect_languages(texts: pl.Series) -> pl.Series:
    """An ISO 639-1 code (or null when the text is too short or the detector unsure)."""
    detect = _attr("sftdata.steps.language", "detect_languages")
    try:
        return detect(texts)
    except UserError as exc:  # the detector's own package is not installed
        raise Unavailable(str(exc)) from None

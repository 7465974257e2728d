"""Audit sections computed by the cleaning steps in dry-run: duplicates, filter hits,
refusals and the language mix. Each returns ``{"available": False, "reason": ...}``
when the step it needs is not installed (see ``sftdata.audit.deps``)."""

from __future__ import annotations

import logging
from typing import Callable

import polars as pl

from sftdata.audit import deps
from sftdata.audit.columns import first_of_role, share
from sftdata.errors import UserError
from sftdata.steps.base import DETAIL, Texts

log = logging.getLogger("sftdata.audit")

ROW = "_audit_row"
TOP_LANGUAGES = 12
TOP_CLUSTERS = 5
LANGUAGE_CHARS = 300
UNSURE = "unsure"  # too short to judge, or the detector is not confident


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _guard(section: Callable[[], dict]) -> dict:
    """Run a section; a missing step module or a crash in a step makes it "not
    available" with the reason (and a warning), never the end of the whole audit."""
    try:
        return {"available": True, **section()}
    except deps.Unavailable as exc:
        return {"available": False, "reason": str(exc)}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failing step must not sink the report
        log.warning("audit section failed: %s", _failure(exc))
        return {"available": False, "reason": f"failed ({_failure(exc)})"}


def _clusters(rejected: pl.DataFrame, frame: pl.DataFrame) -> list[dict]:
    """The largest duplicate clusters: the kept record's prompt and how many copies."""
    if rejected.height == 0:
        return []
    kept_ids = (rejected[DETAIL].str.json_path_match("$.duplicate_of")
                .drop_nulls().value_counts(sort=True).head(TOP_CLUSTERS))
    firsts = frame.select("id", first_of_role("user").alias("content"))
    lookup = dict(zip(firsts["id"].to_list(), firsts["content"].to_list()))
    return [{"kept_id": kid, "copies": int(count), "text": (lookup.get(kid) or "")[:200]}
            for kid, count in kept_ids.iter_rows()]


def duplicate_stats(frame: pl.DataFrame) -> dict:
    """Exact duplicates, then near duplicates among what exact dedup keeps (so a record
    is counted once), both as shares of all records; default dedup params."""
    def section() -> dict:
        exact_step, near_step = deps.dedup_steps()
        exact = exact_step(frame)
        near = near_step(exact.kept)
        n = frame.height
        return {
            "exact": {"duplicates": exact.report.rows_in - exact.report.rows_out,
                      "rate": share(exact.rejected.height, n),
                      "clusters": _clusters(exact.rejected, frame),
                      "params": exact.report.params},
            "near": {"duplicates": near.rejected.height, "rate": share(near.rejected.height, n),
                     "clusters": _clusters(near.rejected, frame),
                     "params": near.report.params},
            "unique_share": share(near.report.rows_out, n),
        }
    return _guard(section)


def filter_stats(frame: pl.DataFrame, derived: pl.DataFrame) -> dict:
    """Each default filter run on every record (dry-run): hits by reason and by filter,
    and how many records at least one filter would drop (a record may hit several).
    The prompt/response texts already in ``derived`` are handed to every filter, so no
    filter recomputes them."""
    def section() -> dict:
        steps = deps.default_filters()
        texts = Texts.of_texts(derived["instruction"], derived["response"], frame["messages"])
        indexed = frame.with_row_index(ROW)
        by_reason: dict[str, int] = {}
        by_filter: dict[str, int] = {}
        hit_rows: set[int] = set()
        seconds = 0.0
        failed: dict[str, str] = {}
        for step in steps:
            try:
                result = step(indexed, texts)
            except Exception as exc:  # noqa: BLE001 - report the filter, keep the others
                log.warning("filter %s failed in the audit: %s", step.name, _failure(exc))
                failed[step.name] = _failure(exc)
                continue
            seconds += result.report.seconds
            by_filter[step.name] = result.rejected.height
            for reason, count in result.report.drops.items():
                by_reason[reason] = by_reason.get(reason, 0) + count
            if ROW in result.rejected.columns:
                hit_rows.update(result.rejected[ROW].to_list())
        ordered = dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
        return {"filters": [s.name for s in steps], "by_reason": ordered, "by_filter": by_filter,
                "records_hit": len(hit_rows), "rate": share(len(hit_rows), frame.height),
                "failed": failed, "seconds": round(seconds, 3)}
    return _guard(section)


def refusal_stats(frame: pl.DataFrame, derived: pl.DataFrame) -> dict:
    """Share of records whose response holds a refusal / AI-boilerplate phrase."""
    def section() -> dict:
        mask = deps.refusal_mask(derived["response"]).fill_null(False)
        hits = int(mask.sum())
        examples = derived.filter(mask).head(3).select("id", "response").to_dicts()
        for ex in examples:
            ex["response"] = ex["response"][:300]
        return {"records": hits, "rate": share(hits, frame.height), "examples": examples}
    return _guard(section)


def language_stats(derived: pl.DataFrame) -> dict:
    """Language of each record (detected on the first ``LANGUAGE_CHARS`` characters of
    instruction + response), counted; ``unsure`` = too short or not confident."""
    def section() -> dict:
        # The opening of a record is enough to tell its language, and much faster.
        texts = derived.select(pl.concat_str(["instruction", "response"], separator="\n")
                               .str.slice(0, LANGUAGE_CHARS)).to_series()
        langs = deps.detect_languages(texts).fill_null(UNSURE)
        counts = langs.value_counts(sort=True)
        rows = [(lang, int(c)) for lang, c in counts.iter_rows()]
        top = rows[:TOP_LANGUAGES]
        other = sum(c for _, c in rows[TOP_LANGUAGES:])
        result = {lang: c for lang, c in top}
        if other:
            result["other"] = other
        return {"counts": result, "distinct": len(rows),
                "shares": {k: share(v, derived.height) for k, v in result.items()}}
    return _guard(section)


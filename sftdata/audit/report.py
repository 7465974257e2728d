"""The audit report: the stats (and, for a recipe run, every stage's counts) as one
self-contained HTML file with inline SVG plots, plus the same data as JSON.

``render_report(stats, stage_reports=None, html_path=None, json_path=None)`` is the
single entry point for ``sftdata audit`` and ``sftdata run``; see its docstring.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any, Iterable

from jinja2 import select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from sftdata.audit import plots
from sftdata.io import atomic_path
from sftdata.templating import sandboxed_environment

TEMPLATE = "report.html.j2"


def normalise_stages(stage_reports: Iterable[Any] | None) -> list[dict]:
    """Stage reports as plain dicts: pydantic ``StepReport``s or dicts with ``step``,
    ``rows_in``, ``rows_out``, ``drops`` ({reason: count}) and optional ``seconds``.
    Adds ``dropped`` (sum of drops), ``added`` (rows a stage created, e.g. a mix) and
    ``unexplained`` (rows lost without a reason: should be 0, shown when it is not)."""
    out = []
    for report in stage_reports or []:
        if hasattr(report, "model_dump"):
            report = report.model_dump()
        missing = [k for k in ("step", "rows_in", "rows_out") if k not in report]
        if missing:
            raise ValueError(f"stage report {report!r} lacks {', '.join(missing)}")
        drops = {str(k): int(v) for k, v in (report.get("drops") or {}).items() if v}
        rows_in, rows_out = int(report["rows_in"]), int(report["rows_out"])
        dropped = sum(drops.values())
        stage = {**report, "step": str(report["step"]), "rows_in": rows_in, "rows_out": rows_out,
                 "drops": dict(sorted(drops.items(), key=lambda kv: -kv[1])),
                 "seconds": float(report.get("seconds") or 0.0), "dropped": dropped,
                 "added": max(rows_out + dropped - rows_in, 0),
                 "unexplained": max(rows_in - rows_out - dropped, 0)}
        out.append(stage)
    return out


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _svgs(stats: dict, stages: list[dict]) -> dict[str, Markup]:
    """Every plot of the report, keyed by name, as SVG markup."""
    svg: dict[str, str] = {}
    sources = stats.get("sources") or []
    svg["sources"] = plots.donut_svg(
        [(f'{_short(s["source"], 30)} ({s["format"] or "?"})', s["records"]) for s in sources],
        "Source mix")
    conv = stats.get("conversations") or {}
    if conv:
        svg["turns"] = plots.histogram_svg(conv["turns"]["hist"], "Turns per conversation",
                                           plots.PALETTE[3], "turns (system excluded)")
    lengths = stats.get("lengths") or {}
    unit = lengths.get("token_unit", "words")
    for side, color in (("instruction", plots.INSTRUCTION_COLOR), ("response", plots.RESPONSE_COLOR)):
        if side in lengths:
            svg[f"{side}_chars"] = plots.histogram_svg(
                lengths[side]["chars"]["hist"], f"{side.title()} length (characters)", color, "characters")
            svg[f"{side}_tokens"] = plots.histogram_svg(
                lengths[side]["tokens"]["hist"], f"{side.title()} length ({unit})", color, unit)
    top = (stats.get("leading_words") or {}).get("top") or []
    svg["sunburst"] = plots.sunburst_svg(top, "Leading words and their objects")
    svg["verbs"] = plots.bar_svg([(t["word"], t["count"]) for t in top], "Top leading words",
                                 plots.WORDS_COLOR)
    langs = stats.get("languages") or {}
    if langs.get("available"):
        svg["languages"] = plots.bar_svg(list(langs["counts"].items()), "Language mix",
                                         list(plots.PALETTE))
    filters = stats.get("filters") or {}
    if filters.get("available"):
        svg["filters"] = plots.bar_svg(list(filters["by_reason"].items()),
                                       "Default filter hits by reason (dry-run)", plots.FILTER_COLOR)
    for score in (stats.get("scores") or {}).get("scores") or []:
        hist = {"edges": score["edges"], "counts": score["counts"], "overflow": 0}
        svg[f"score-{score['key']}"] = plots.histogram_svg(hist, f"{score['key']} (all records)",
                                                          plots.INSTRUCTION_COLOR, score["key"], width=360)
        for i, row in enumerate(score["by_source"]):
            hist = {"edges": score["edges"], "counts": row["counts"], "overflow": 0}
            svg[f"score-{score['key']}-{i}"] = plots.histogram_svg(
                hist, _short(row["source"], 34), plots.PALETTE[(i + 1) % len(plots.PALETTE)],
                score["key"], width=300, height=170)
    for i, pair in enumerate((stats.get("scores") or {}).get("pairs") or []):
        svg[f"scatter-{i}"] = plots.scatter_svg(pair["points"], pair["x"], pair["y"],
                                                f"{pair['y']} against {pair['x']}")
    if stages:
        svg["funnel"] = plots.funnel_svg(stages, "Where your data went: rows kept and dropped per stage")
    # An id per plot lets a reader link to it (and the browser test find it).
    return {k: Markup(v.replace("<svg ", f'<svg id="plot-{k}" ', 1)) for k, v in svg.items()}


def _environment() -> ImmutableSandboxedEnvironment:
    env = sandboxed_environment(autoescape=select_autoescape(default=True, default_for_string=True),
                                trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: f"{(v or 0) * 100:.1f}%"
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    return env


def render_html(stats: dict, stage_reports: Iterable[Any] | None = None) -> str:
    """The report as an HTML string (nothing written)."""
    stages = normalise_stages(stage_reports)
    source = resources.files("sftdata.templates").joinpath(TEMPLATE).read_text(encoding="utf-8")
    template = _environment().from_string(source)
    return template.render(stats=stats, stages=stages, svg=_svgs(stats, stages))


def render_report(
    stats: dict,
    stage_reports: Iterable[Any] | None = None,
    html_path: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
) -> str:
    """Render the report; write the HTML and/or JSON atomically when paths are given.

    ``stats`` comes from ``compute_stats``. ``stage_reports`` (optional) lists the
    pipeline stages in order, each a ``StepReport`` or a dict with ``step``,
    ``rows_in``, ``rows_out``, ``drops`` and ``seconds`` (read/convert stages included);
    with them the report opens with the "where your data went" table and funnel.
    The JSON file holds ``stats`` plus ``"stages"`` (the normalised stage list).
    Returns the HTML text.
    """
    stages = normalise_stages(stage_reports)
    html = render_html(stats, stages)
    if html_path is not None:
        with atomic_path(html_path) as tmp:
            tmp.write_text(html, encoding="utf-8")
    if json_path is not None:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps({**stats, "stages": stages}, ensure_ascii=False, indent=2,
                                      default=str) + "\n", encoding="utf-8")
    return html

"""render_report: the HTML (self-contained, escaped, one SVG per plot) and the JSON."""

from __future__ import annotations

import json
import re

import pytest

from sftdata.audit import compute_stats, normalise_stages, render_report
from sftdata.records import frame_from_records
from sftdata.steps.base import StepReport
from tests.audit.conftest import rec

STAGES = [
    {"step": "read", "rows_in": 120, "rows_out": 110, "drops": {"bad_json": 10}, "seconds": 0.1},
    StepReport(step="length_filter", rows_in=110, rows_out=100,
               drops={"too_short": 7, "too_long": 3}, seconds=0.5),
    {"step": "mix", "rows_in": 100, "rows_out": 130, "drops": {}},
]


def test_normalise_stages_accepts_step_reports_and_counts_drops():
    stages = normalise_stages(STAGES)
    assert [s["step"] for s in stages] == ["read", "length_filter", "mix"]
    assert stages[1]["dropped"] == 10 and stages[1]["drops"] == {"too_short": 7, "too_long": 3}
    assert stages[2]["added"] == 30 and stages[2]["unexplained"] == 0
    lossy = normalise_stages([{"step": "x", "rows_in": 10, "rows_out": 5, "drops": {"a": 2}}])
    assert lossy[0]["unexplained"] == 3
    with pytest.raises(ValueError, match="rows_out"):
        normalise_stages([{"step": "x", "rows_in": 1}])


def test_report_files_and_pipeline_view(small_frame, tmp_path):
    stats = compute_stats(small_frame, sample_count=2, seed=1)
    html_path, json_path = tmp_path / "r" / "report.html", tmp_path / "r" / "stats.json"
    html = render_report(stats, STAGES, html_path=html_path, json_path=json_path)
    assert html_path.read_text(encoding="utf-8") == html
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["records"] == 6 and [s["step"] for s in data["stages"]] == ["read", "length_filter", "mix"]
    assert "Where your data went" in html
    assert 'id="plot-funnel"' in html and "too_short: 7" in html and "+30 added" in html
    for plot in ("sources", "turns", "instruction_chars", "instruction_tokens",
                 "response_chars", "response_tokens", "sunburst", "verbs"):
        assert f'id="plot-{plot}"' in html
    # one funnel bar segment per (stage, reason) plus the kept segment of each stage
    funnel = re.search(r'<svg id="plot-funnel".*?</svg>', html, re.S).group(0)
    assert funnel.count("<rect") == 3 + 3 + 4  # kept x3, drops x3, legend (kept + 3 reasons)


def test_report_without_stages_has_no_pipeline_view(small_frame):
    html = render_report(compute_stats(small_frame, sample_count=0))
    assert "Where your data went" not in html and "plot-funnel" not in html


def test_report_is_self_contained_and_escapes_text():
    frame = frame_from_records([
        rec([("user", "Show <script>alert(1)</script> & more"), ("assistant", "<b>no</b>")])])
    html = render_report(compute_stats(frame, sample_count=1))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "@import" not in html


def test_unavailable_section_is_shown_not_faked(small_frame):
    stats = compute_stats(small_frame, sample_count=0)
    stats["refusals"] = {"available": False, "reason": "sftdata.steps.filters is not installed"}
    html = render_report(stats)
    assert "Not available: sftdata.steps.filters is not installed" in html

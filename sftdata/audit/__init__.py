"""The audit: statistics of a data set and a self-contained HTML report.

    read = read_inputs(["a.json", "b.jsonl"])          # files -> canonical frame + facts
    stats = compute_stats(read.frame, inputs=read.inputs)  # JSON-able dict
    render_report(stats, stage_reports, html_path="report.html", json_path="stats.json")

``stage_reports`` (for ``sftdata run``) lists each stage's ``StepReport`` (or a dict
with step / rows_in / rows_out / drops / seconds) to show where the data went.
"""

from sftdata.audit.inputs import AuditInput, InputInfo, read_inputs
from sftdata.audit.report import normalise_stages, render_html, render_report
from sftdata.audit.stats import compute_stats

__all__ = ["AuditInput", "InputInfo", "compute_stats", "normalise_stages", "read_inputs",
           "render_html", "render_report"]

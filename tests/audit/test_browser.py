"""The report in a real browser: Debian's headless chromium lays it out and screenshots
it; every plot must have a size on the page and show its colours in that region.

Needs ``apt-get install -y chromium`` (and pillow, from the dev extra, to read the PNG).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from sftdata.audit import compute_stats, plots, render_report
from tests.audit.test_report import STAGES

pytestmark = pytest.mark.integration
WINDOW = (1200, 3000)
# plot id -> a colour it must show on screen
EXPECTED = {
    "funnel": plots.KEPT_COLOR,
    "sources": plots.PALETTE[0],
    "turns": plots.PALETTE[3],
    "instruction_chars": plots.INSTRUCTION_COLOR,
    "instruction_tokens": plots.INSTRUCTION_COLOR,
    "response_chars": plots.RESPONSE_COLOR,
    "response_tokens": plots.RESPONSE_COLOR,
    "sunburst": plots.PALETTE[0],
    "verbs": plots.WORDS_COLOR,
}
# Written into a copy of the report only: the report itself carries no script.
MEASURE = """<script>
const out = document.body.appendChild(document.createElement("pre"));
out.id = "rects";
const r = {};
for (const s of document.querySelectorAll("svg.plot")) {
  const b = s.getBoundingClientRect();
  r[s.id] = [b.left + scrollX, b.top + scrollY, b.width, b.height];
}
out.textContent = JSON.stringify(r);
</script>"""


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (apt-get install -y chromium); browser test skipped")
    return path


def run_chromium(binary, tmp_path, *args) -> str:
    profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           "--hide-scrollbars", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_plots_render_in_chromium(chromium, small_frame, tmp_path):
    image_mod = pytest.importorskip("PIL.Image", reason="pillow (dev extra) reads the screenshot")
    import numpy as np

    html = render_report(compute_stats(small_frame, sample_count=2), STAGES)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    measured = tmp_path / "measured.html"
    measured.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")

    dom = run_chromium(chromium, tmp_path, "--dump-dom", measured.as_uri())
    rects = json.loads(re.search(r'<pre id="rects">(.*?)</pre>', dom, re.S).group(1))
    assert {f"plot-{name}" for name in EXPECTED} <= set(rects), sorted(rects)
    for plot_id, (_, _, width, height) in rects.items():
        assert width > 100 and height > 50, (plot_id, width, height)

    shot = tmp_path / "shot.png"
    run_chromium(chromium, tmp_path, f"--screenshot={shot}", report.as_uri())
    pixels = np.asarray(image_mod.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "screenshot is (nearly) blank"
    for name, colour in EXPECTED.items():
        x, y, w, h = (round(v) for v in rects[f"plot-{name}"])
        assert y + h <= WINDOW[1], f"{name} is below the screenshot"
        region = pixels[y:y + h, x:x + w]
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        hits = int((region == rgb).all(axis=-1).sum())
        assert hits >= 150, f"plot {name}: only {hits} pixels of {colour} in its region"

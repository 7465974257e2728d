"""Plots as inline SVG strings: histograms, bar charts, a donut, a sunburst, a funnel.

Hand-written SVG keeps the report one self-contained file with no plotting dependency
and no script: it opens offline in any browser, scales crisply, and each mark carries a
``<title>`` so hovering shows the exact figure. Colours are module constants so tests
can look for them in a rendered screenshot.
"""

from __future__ import annotations

import math
from html import escape

INSTRUCTION_COLOR = "#4c78a8"
RESPONSE_COLOR = "#f58518"
OVERFLOW_COLOR = "#bab0ac"
WORDS_COLOR = "#54a24b"
FILTER_COLOR = "#b279a2"
KEPT_COLOR = "#2e8b57"
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac")
DROP_PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                "#7f7f7f", "#c49c94", "#f7b6d2")
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"'


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}" {FONT} font-size="11">' + "".join(body) + "</svg>")


def _fmt(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>'
            f"{escape(str(text))}</text>")


def histogram_svg(hist: dict, title: str, color: str, unit: str,
                  width: int = 520, height: int = 220) -> str:
    """Vertical bars for ``{"edges", "counts", "overflow"}`` (see columns.histogram)."""
    counts = list(hist.get("counts") or [])
    edges = list(hist.get("edges") or [])
    overflow = int(hist.get("overflow") or 0)
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    if not counts:
        body.append(_text(width / 2, height / 2, "no data", "middle"))
        return _svg(width, height, body, title)
    left, right, top, bottom = 46, 12, 28, 34
    bars = counts + ([overflow] if overflow else [])
    peak = max(max(bars), 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / len(bars)
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
                f'y2="{top + plot_h}" stroke="#999"/>')
    for frac in (0.5, 1.0):
        y = top + plot_h - frac * plot_h
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                    f'stroke="#eee"/>')
        body.append(_text(left - 4, y + 4, _fmt(peak * frac), "end"))
    for i, count in enumerate(bars):
        h = count / peak * plot_h
        x = left + i * step
        is_over = overflow and i == len(bars) - 1
        lo, hi = (edges[-1], None) if is_over else (edges[i], edges[i + 1])
        tip = (f"> {_fmt(lo)} {unit}: {count:,}" if is_over
               else f"{_fmt(lo)}–{_fmt(hi)} {unit}: {count:,}")
        body.append(f'<rect x="{x + 0.5:.1f}" y="{top + plot_h - h:.1f}" '
                    f'width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
                    f'fill="{OVERFLOW_COLOR if is_over else color}"><title>{escape(tip)}</title></rect>')
    body.append(_text(left, top + plot_h + 14, _fmt(edges[0]), "middle"))
    body.append(_text(left + len(counts) // 2 * step, top + plot_h + 14,
                      _fmt(edges[len(counts) // 2]), "middle"))
    body.append(_text(width - right, top + plot_h + 14,
                      f"> {_fmt(edges[-1])}" if overflow else _fmt(edges[-1]), "end"))
    body.append(_text(left + plot_w / 2, height - 4, unit, "middle", 'fill="#555"'))
    return _svg(width, height, body, title)


def bar_svg(items: list[tuple[str, float]], title: str, color: str | list[str],
            width: int = 520, value_suffix: str = "") -> str:
    """Horizontal bars, one per ``(label, value)``, largest first as given."""
    row, top = 20, 26
    height = top + row * max(len(items), 1) + 8
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    if not items:
        body.append(_text(width / 2, top + 14, "nothing to show", "middle"))
        return _svg(width, height, body, title)
    label_w, value_w = 170, 70
    peak = max(max(v for _, v in items), 1e-9)
    for i, (label, value) in enumerate(items):
        y = top + i * row
        fill = color[i % len(color)] if isinstance(color, list) else color
        w = value / peak * (width - label_w - value_w)
        short = label if len(label) <= 26 else label[:25] + "…"
        body.append(_text(label_w - 6, y + 13, short, "end"))
        body.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(w, 1):.1f}" height="{row - 5}" '
                    f'fill="{fill}"><title>{escape(f"{label}: {_fmt(value)}{value_suffix}")}'
                    f"</title></rect>")
        body.append(_text(label_w + w + 4, y + 13, f"{_fmt(value)}{value_suffix}"))
    return _svg(width, height, body, title)


def _arc(cx: float, cy: float, r0: float, r1: float, a0: float, a1: float) -> str:
    """SVG path of a ring segment between radii r0..r1 and angles a0..a1 (radians)."""
    if a1 - a0 >= 2 * math.pi - 1e-9:
        a1 = a0 + 2 * math.pi - 1e-4
    large = 1 if a1 - a0 > math.pi else 0
    p = lambda r, a: f"{cx + r * math.sin(a):.2f},{cy - r * math.cos(a):.2f}"  # noqa: E731
    return (f"M{p(r1, a0)} A{r1},{r1} 0 {large} 1 {p(r1, a1)} L{p(r0, a1)} "
            f"A{r0},{r0} 0 {large} 0 {p(r0, a0)} Z")


def _lighten(color: str, amount: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    mix = lambda c: round(c + (255 - c) * amount)  # noqa: E731
    return f"#{mix(r):02x}{mix(g):02x}{mix(b):02x}"


def donut_svg(items: list[tuple[str, float]], title: str, size: int = 240) -> str:
    """A donut with a legend (the source mix)."""
    legend_w = 360
    height = max(size, 30 + 18 * len(items))
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    total = sum(v for _, v in items) or 1
    cx, cy, angle = size / 2, size / 2 + 10, 0.0
    for i, (label, value) in enumerate(items):
        sweep = value / total * 2 * math.pi
        color = PALETTE[i % len(PALETTE)]
        tip = f"{label}: {value:,.0f} ({value / total:.1%})"
        body.append(f'<path d="{_arc(cx, cy, size * 0.22, size * 0.42, angle, angle + sweep)}" '
                    f'fill="{color}" stroke="#fff"><title>{escape(tip)}</title></path>')
        angle += sweep
        y = 34 + 18 * i
        body.append(f'<rect x="{size + 10}" y="{y - 10}" width="12" height="12" fill="{color}"/>')
        short = label if len(label) <= 40 else label[:39] + "…"
        body.append(_text(size + 28, y, f"{short}  {value:,.0f} ({value / total:.1%})"))
    return _svg(size + legend_w, height, body, title)


def sunburst_svg(top: list[dict], title: str, size: int = 460) -> str:
    """Leading words (inner ring) and their objects (outer ring), as Self-Instruct plots
    them; ``top`` is ``leading_words["top"]``: ``[{word, count, objects: [{word, count}]}]``."""
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    total = sum(v["count"] for v in top)
    if not total:
        body.append(_text(size / 2, size / 2, "no instructions", "middle"))
        return _svg(size, size, body, title)
    cx = cy = size / 2 + 8
    r_in, r_mid, r_out = size * 0.12, size * 0.30, size * 0.46
    angle = 0.0
    for i, verb in enumerate(top):
        sweep = verb["count"] / total * 2 * math.pi
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<path d="{_arc(cx, cy, r_in, r_mid, angle, angle + sweep)}" fill="{color}" '
                    f'stroke="#fff"><title>{escape(verb["word"])}: {verb["count"]:,}</title></path>')
        sub = angle
        for obj in verb["objects"]:
            osweep = obj["count"] / total * 2 * math.pi
            body.append(f'<path d="{_arc(cx, cy, r_mid, r_out, sub, sub + osweep)}" '
                        f'fill="{_lighten(color, 0.45)}" stroke="#fff"><title>'
                        f'{escape(verb["word"])} {escape(obj["word"])}: {obj["count"]:,}</title></path>')
            if osweep > 0.09:
                body.append(_radial_label(cx, cy, (r_mid + r_out) / 2, sub + osweep / 2, obj["word"]))
            sub += osweep
        if sweep > 0.12:
            body.append(_radial_label(cx, cy, (r_in + r_mid) / 2, angle + sweep / 2, verb["word"],
                                      'font-weight="600"'))
        angle += sweep
    return _svg(size + 16, size + 16, body, title)


def _radial_label(cx: float, cy: float, r: float, a: float, text: str, extra: str = "") -> str:
    x, y = cx + r * math.sin(a), cy - r * math.cos(a)
    # Along the radius, turned so the text is never upside down.
    rot = math.degrees(a) - 90 if a < math.pi else math.degrees(a) + 90
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="middle" '
            f'font-size="10" {extra} transform="rotate({rot:.1f} {x:.1f} {y:.1f})">'
            f"{escape(text[:14])}</text>")


def funnel_svg(stages: list[dict], title: str, width: int = 900) -> str:
    """One bar per stage: rows kept (green) then drops stacked by reason, all on the
    scale of the largest stage, so shrinking bars show where the data went."""
    row, top, label_w = 30, 28, 150
    reasons = sorted({r for s in stages for r in (s.get("drops") or {})})
    colors = {r: DROP_PALETTE[i % len(DROP_PALETTE)] for i, r in enumerate(reasons)}
    legend_rows = math.ceil((len(reasons) + 1) / 4)
    height = top + row * max(len(stages), 1) + 10 + 18 * legend_rows
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    peak = max([max(s["rows_in"], s["rows_out"]) for s in stages] + [1])
    scale = (width - label_w - 110) / peak
    for i, stage in enumerate(stages):
        y = top + i * row
        body.append(_text(label_w - 8, y + 17, stage["step"], "end"))
        x = label_w
        kept_w = stage["rows_out"] * scale
        body.append(f'<rect x="{x}" y="{y + 4}" width="{max(kept_w, 1):.1f}" height="{row - 8}" '
                    f'fill="{KEPT_COLOR}"><title>{escape(stage["step"])}: kept '
                    f'{stage["rows_out"]:,}</title></rect>')
        x += kept_w
        for reason, count in sorted((stage.get("drops") or {}).items(), key=lambda kv: -kv[1]):
            w = count * scale
            body.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row - 8}" '
                        f'fill="{colors[reason]}"><title>{escape(stage["step"])}: {escape(reason)} '
                        f'{count:,}</title></rect>')
            x += w
        body.append(_text(x + 6, y + 17, f'{stage["rows_out"]:,} / {stage["rows_in"]:,}'))
    y = top + row * len(stages) + 14
    for i, (label, color) in enumerate([("kept", KEPT_COLOR)] + list(colors.items())):
        lx, ly = 10 + (i % 4) * (width // 4), y + 18 * (i // 4)
        body.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        body.append(_text(lx + 16, ly, label[:36]))
    return _svg(width, height, body, title)


def scatter_svg(points: list[list], x_label: str, y_label: str, title: str,
                width: int = 420, height: int = 300) -> str:
    """One dot per ``[x, y, source]``, coloured by source, with a legend (two scores)."""
    body = [_text(8, 16, title, extra='font-weight="600" font-size="13"')]
    if not points:
        body.append(_text(width / 2, height / 2, "no data", "middle"))
        return _svg(width, height, body, title)
    left, right, top, bottom = 50, 12, 28, 40
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    sources = sorted({p[2] for p in points})
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>')
    for x, y, source in points:
        cx = left + (x - x0) / (x1 - x0) * plot_w
        cy = top + plot_h - (y - y0) / (y1 - y0) * plot_h
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{colors[source]}" '
                    f'fill-opacity="0.6"><title>{escape(f"{source}: {x_label} {x:g}, {y_label} {y:g}")}'
                    f"</title></circle>")
    body.append(_text(left, top + plot_h + 14, f"{x0:.3g}", "middle"))
    body.append(_text(left + plot_w, top + plot_h + 14, f"{x1:.3g}", "end"))
    body.append(_text(left - 4, top + plot_h, f"{y0:.3g}", "end"))
    body.append(_text(left - 4, top + 8, f"{y1:.3g}", "end"))
    body.append(_text(left + plot_w / 2, height - 18, x_label, "middle", 'fill="#555"'))
    body.append(_text(12, top + plot_h / 2, y_label, "middle",
                      f'fill="#555" transform="rotate(-90 12 {top + plot_h / 2:.1f})"'))
    for i, source in enumerate(sources[:6]):
        lx = left + i * (plot_w // min(len(sources), 6))
        body.append(f'<rect x="{lx}" y="{height - 10}" width="8" height="8" fill="{colors[source]}"/>')
        body.append(_text(lx + 11, height - 2, source[:16], extra='font-size="9"'))
    return _svg(width, height, body, title)

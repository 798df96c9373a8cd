"""Charts as inline SVG text for report.html: scatter, lines, horizontal bars with spread, heatmap and
histogram with marked ranges.

Why our own module and not matplotlib or plotly: the report must open offline as one file, and these
are five simple chart kinds. Matplotlib would be a new dependency (it is not in requirements.txt) and
writes about 16 KB of SVG per chart (every glyph a path); plotly inlines 4.7 MB of JavaScript per file.
These charts are 2-10 KB each, use the page's own font, and need no JavaScript. Labels go through
qconvert.report.format like every table cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from qconvert.report.format import number

# Okabe-Ito: told apart with every common colour-vision deficiency.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
WIDTH = 640
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44  # plot margins: room for tick labels and axis titles


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def tick_text(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return number(value, f".{decimals}f") if abs(value) < 1e6 else number(value, ".3g")


@dataclass
class Scale:
    lo: float
    hi: float
    start: float  # pixels
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)


def _text(x: float, y: float, content: str, anchor: str = "middle", size: int = 11, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{extra}>'
            f"{escape(content)}</text>")


def _svg(height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
            f'height="{height}" role="img" font-family="sans-serif"><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def _axes(x: Scale, y: Scale, x_ticks: list[float], y_ticks: list[float], x_label: str, y_label: str,
          height: int) -> list[str]:
    out = [f'<g stroke="#ddd">']
    out += [f'<line x1="{x.start}" x2="{x.end}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>' for t in y_ticks]
    out += ["</g>", f'<g stroke="#444"><line x1="{x.start}" x2="{x.end}" y1="{y.start}" y2="{y.start}"/>'
            f'<line x1="{x.start}" x2="{x.start}" y1="{y.start}" y2="{y.end}"/></g>']
    out += [_text(x(t), y.start + 14, tick_text(t, x_ticks)) for t in x_ticks]
    out += [_text(x.start - 6, y(t) + 4, tick_text(t, y_ticks), "end") for t in y_ticks]
    out.append(_text((x.start + x.end) / 2, height - 6, x_label, size=12))
    out.append(_text(14, (y.start + y.end) / 2, y_label, size=12,
                     extra=f' transform="rotate(-90 14 {(y.start + y.end) / 2:.1f})"'))
    return out


def _legend(names: list[str], y: float) -> list[str]:
    """Swatches and names in a row from the left, wrapping onto a second row below `y` where needed."""
    out, x = [], LEFT
    for index, name in enumerate(names):
        width = 24 + 6 * len(name)
        if x + width > WIDTH and x > LEFT:
            x, y = LEFT, y + 14
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour(index)}"/>')
        out.append(_text(x + 14, y, name, "start"))
        x += width
    return out


def _padded(values: list[float], zero: bool = False) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.01 or 1.0  # equal values (every artifact at one top-1): a narrow band
    return (lo if zero and lo == 0 else lo - pad), (hi if zero and hi == 0 else hi + pad)


def pareto_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both: smaller x and higher y."""
    best, frontier = -math.inf, []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            frontier.append((x, y))
            best = y
    return frontier


def scatter(points: list[tuple[float, float, str]], x_label: str, y_label: str, title: str,
            frontier: bool = True) -> str:
    """Labelled points; with `frontier`, the Pareto front (smaller x, higher y) joined by a line."""
    height = 320
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks, y_ticks = nice_ticks(*_padded(xs, zero=True)), nice_ticks(*_padded(ys))
    x = Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT - 90)
    y = Scale(y_ticks[0], y_ticks[-1], height - BOTTOM, TOP)
    body = _axes(x, y, x_ticks, y_ticks, x_label, y_label, height)
    if frontier and len(points) > 1:
        front = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pareto_frontier(list(zip(xs, ys))))
        body.append(f'<polyline points="{front}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    placed: list[tuple[float, float]] = []
    for index, (a, b, label) in enumerate(points):
        body.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="4.5" fill="{colour(index)}"/>')
        lx, ly = x(a) + 7, y(b) + 4
        while any(abs(lx - px) < 70 and abs(ly - py) < 11 for px, py in placed):  # near points: stack labels
            ly += 11
        placed.append((lx, ly))
        body.append(_text(lx, ly, label, "start", 10))
    return _svg(height, body, title)


def lines(series: list[tuple[str, list[tuple[float, float]]]], x_label: str, y_label: str, title: str,
          reference: tuple[str, float] | None = None) -> str:
    """One line with markers per series; `reference`: a labelled horizontal line (e.g. the unpruned metric)."""
    height = 320
    values = [p for _, points in series for p in points]
    ys = [p[1] for p in values] + ([reference[1]] if reference else [])
    xs = [p[0] for p in values]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(*_padded(ys))
    x = Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT - 8)
    y = Scale(y_ticks[0], y_ticks[-1], height - BOTTOM - 18, TOP)
    body = _axes(x, y, x_ticks, y_ticks, x_label, y_label, height)
    if reference:
        body.append(f'<line x1="{x.start}" x2="{x.end}" y1="{y(reference[1]):.1f}" y2="{y(reference[1]):.1f}" '
                    f'stroke="#777" stroke-dasharray="5 4"/>')
        body.append(_text(x.end - 4, y(reference[1]) - 5, reference[0], "end", 10))
    for index, (_, points) in enumerate(series):
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour(index)}" stroke-width="2"/>')
        body += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="{colour(index)}"/>' for a, b in points]
    body += _legend([name for name, _ in series], height - 22)
    return _svg(height, body, title)


@dataclass
class Bar:
    label: str
    values: list[float | None]  # one per series
    spread: tuple[float, float, float, float] | None = None  # min, 25th, 75th percentile, max (first series)
    text: str = ""  # printed after the bar


def hbars(bars: list[Bar], x_label: str, title: str, series: list[str] | None = None, spec: str = ".3g",
          zero: bool = True) -> str:
    """Horizontal bars, one row per Bar, several series side by side; a Bar's spread is drawn as a box
    (25th-75th percentile) with whiskers (min, max) over its first bar. `zero`: the axis starts at zero
    (else at the smallest value, for close values such as a metric before and after training)."""
    rows = len(series or [None])
    band = 8 + 12 * rows
    left = min(220, 16 + 6 * max(len(b.label) for b in bars))
    height = TOP + band * len(bars) + BOTTOM + (22 if series else 0)
    values = [v for b in bars for v in b.values if v is not None]
    values += [s for b in bars if b.spread for s in (b.spread[0], b.spread[3])]
    ticks = nice_ticks(*_padded(values or [0.0, 1.0], zero=zero))
    x = Scale(ticks[0], ticks[-1], left, WIDTH - RIGHT - 60)
    top, bottom = TOP, TOP + band * len(bars)
    body = ['<g stroke="#ddd">'] + [f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom}"/>'
                                    for t in ticks] + ["</g>"]
    body += [_text(x(t), bottom + 14, tick_text(t, ticks)) for t in ticks]
    body.append(_text((x.start + x.end) / 2, bottom + 32, x_label, size=12))
    for index, bar in enumerate(bars):
        y0 = top + index * band + 4
        body.append(_text(left - 6, y0 + 6 * rows + 4, bar.label, "end"))
        for k, value in enumerate(bar.values):
            if value is None:
                continue
            start, end = sorted((x(0.0 if ticks[0] <= 0 <= ticks[-1] else ticks[0]), x(value)))
            body.append(f'<rect x="{start:.1f}" y="{y0 + 12 * k:.1f}" width="{max(end - start, 1):.1f}" '
                        f'height="10" fill="{colour(k)}" fill-opacity="0.8"/>')
        if bar.spread:
            lo, q1, q3, hi = (x(v) for v in bar.spread)
            mid = y0 + 5
            body.append(f'<g stroke="#222"><line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid}" y2="{mid}"/>'
                        f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{mid - 4}" y2="{mid + 4}"/>'
                        f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{mid - 4}" y2="{mid + 4}"/></g>'
                        f'<rect x="{q1:.1f}" y="{mid - 3}" width="{max(q3 - q1, 1):.1f}" height="6" fill="#fff" '
                        f'stroke="#222"/>')
        label = bar.text or " / ".join(number(v, spec) for v in bar.values)
        end = max([x(v) for v in bar.values if v is not None] + ([x(bar.spread[3])] if bar.spread else []) + [left])
        body.append(_text(end + 4, y0 + 6 * rows + 4, label, "start", 10))
    if series:
        body += _legend(series, height - 8)
    return _svg(height, body, title)


def heatmap(labels: list[str], cells: dict[tuple[str, str], tuple[float | None, str]], title: str,
            caption: str) -> str:
    """A square matrix: cells[(row, col)] = (goodness in [0, 1], text), coloured from red (0) to green (1);
    a goodness of None is grey, a missing cell blank."""
    size = min(96, (WIDTH - 200) // max(len(labels), 1))
    left, top = 200, 24 + max(len(label) for label in labels) * 6
    height = top + size * len(labels) + 40
    body = []
    for j, label in enumerate(labels):
        cx = left + j * size + size / 2
        body.append(_text(cx, top - 6, label, "start", 11, f' transform="rotate(-35 {cx:.1f} {top - 6})"'))
    for i, row in enumerate(labels):
        body.append(_text(left - 6, top + i * size + size / 2 + 4, row, "end"))
        for j, col in enumerate(labels):
            if (row, col) not in cells:
                continue
            share, content = cells[(row, col)]
            fill = "#eee" if share is None else _red_to_green(share)
            body.append(f'<rect x="{left + j * size}" y="{top + i * size}" width="{size - 2}" height="{size - 2}" '
                        f'fill="{fill}"/>')
            body.append(_text(left + j * size + size / 2 - 1, top + i * size + size / 2 + 4, content, size=11))
    body.append(_text(left, height - 12, caption, "start", 11))
    return _svg(height, body, title)


def _red_to_green(share: float) -> str:
    share = min(max(share, 0.0), 1.0)
    red = (0xD5, 0x5E, 0x00)
    green = (0x00, 0x9E, 0x73)
    mixed = [round(a + (b - a) * share) for a, b in zip(red, green)]
    return "#" + "".join(f"{c:02x}" for c in mixed) + "b0"  # translucent, so the text stays readable


def histogram(edges: list[float], counts: list[float], ranges: dict[str, tuple[float, float]], title: str,
              x_label: str) -> str:
    """Bars of `counts` over `edges` on a log count axis (activations are peaked), and each named range
    drawn as a pair of vertical lines in its own colour."""
    height = 314
    extremes = [edges[0], edges[-1]] + [v for lo_hi in ranges.values() for v in lo_hi]
    x_ticks = nice_ticks(min(extremes), max(extremes))
    x = Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT)
    logs = [math.log10(c + 1) for c in counts]
    y_ticks = nice_ticks(0.0, max(logs + [1.0]))
    y = Scale(y_ticks[0], y_ticks[-1], height - BOTTOM - 36, TOP)
    body = ['<g stroke="#444">', f'<line x1="{x.start}" x2="{x.end}" y1="{y.start}" y2="{y.start}"/>',
            f'<line x1="{x.start}" x2="{x.start}" y1="{y.start}" y2="{y.end}"/></g>']
    body += [_text(x(t), y.start + 14, tick_text(t, x_ticks)) for t in x_ticks]
    body += [_text(x.start - 6, y(t) + 4, f"1e{number(t, '.0f')}", "end") for t in y_ticks if float(t).is_integer()]
    body.append(_text((x.start + x.end) / 2, y.start + 30, x_label, size=12))
    path = [f"M{x(edges[0]):.1f},{y.start:.1f}"]
    for lo, hi, value in zip(edges[:-1], edges[1:], logs):
        path.append(f"L{x(lo):.1f},{y(value):.1f}L{x(hi):.1f},{y(value):.1f}")
    path.append(f"L{x(edges[-1]):.1f},{y.start:.1f}Z")
    body.append(f'<path d="{"".join(path)}" fill="#bbb" stroke="#888" stroke-width="0.5"/>')
    for index, (lo, hi) in enumerate(ranges.values()):
        dash = ' stroke-dasharray="5 3"' if index % 2 else ""
        body += [f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y.start}" y2="{y.end}" stroke="{colour(index)}" '
                 f'stroke-width="1.5"{dash}/>' for v in (lo, hi)]
    body += _legend(list(ranges), height - 22)
    return _svg(height, body, title)

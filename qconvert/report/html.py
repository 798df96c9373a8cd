"""report.html: the report as one self-contained page (inline CSS and SVG, no script, no network), for a
conversion, `qconvert sensitivity` or `qconvert prune-sweep`.

Tables come from the same column specs as the terminal and Markdown; charts from qconvert.report.svg.
A section without data is left out. `write_html(result, path)` is the one entry point.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

import numpy as np

from qconvert.fileio import atomic_path
from qconvert.report import svg
from qconvert.report.format import number
from qconvert.report.render import to_html
from qconvert.report.result import ConversionResult, Status

STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1400px; color: #222; padding: 0 16px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; } th { background: #f4f4f4; }
td.right, th.right { text-align: right; font-variant-numeric: tabular-nums; } td.left, th.left { text-align: left; }
th, td.right { white-space: nowrap; } td.left { max-width: 28em; }
caption { caption-side: bottom; text-align: left; color: #555; padding-top: 4px; }
tr.warn td { color: #8a6d00; } tr.bad td { color: #b00020; }
p.note { color: #555; font-size: 13px; } figure { margin: 12px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
"""

SPREAD_PERCENTILES = (5, 25, 75, 95)  # latency whiskers and box: a stray slow run does not set the scale


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _note(content: str) -> str:
    return f'<p class="note">{escape(content)}</p>'


def _figure(chart: str) -> str:
    return f"<figure>{chart}</figure>"


def _page(title: str, sections: list[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1>\n"
            + "\n".join(s for s in sections if s) + "\n</body></html>\n")


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


# --- a conversion -------------------------------------------------------------------------------------

def _headline(row) -> float | None:
    """A row's first --eval metric (top1, dice, cosine)."""
    return _finite(next(iter(row.metrics.values()))) if row.metrics else None


def pareto_section(result: ConversionResult) -> str:
    """The --eval metric (else SQNR) against file size, one point per artifact that ran."""
    by_metric = bool(result.metric)
    value = _headline if by_metric else (lambda row: _finite(row.sqnr_db))
    points = [(row.size_mb, value(row), row.target) for row in result.rows
              if row.status is Status.OK and row.size_mb is not None and value(row) is not None]
    if len(points) < 2:
        return ""
    label = f"{result.metric} (eval)" if by_metric else "SQNR dB against the source"
    return _section("pareto", f"{label} against size",
                    _figure(svg.scatter(points, "file size, MB", label, f"{label} against size")),
                    _note("Dashed: the Pareto front (no other artifact is both smaller and better). Zip-compressed "
                          "sizes are in the table."))


def latency_section(result: ConversionResult) -> str:
    bars = []
    for row in result.rows:
        if row.latencies_ms and row.latency_ms is not None:
            spread = tuple(float(v) for v in np.percentile(row.latencies_ms, SPREAD_PERCENTILES))
            bars.append(svg.Bar(row.target, [row.latency_ms], spread,
                                f"{number(row.latency_ms, '.3f')} ms ({len(row.latencies_ms)} runs)"))
    if not bars:
        return ""
    return _section("latency", "latency", _figure(svg.hbars(bars, "ms per batch", "latency per artifact")),
                    _note(f"Bar: median of the timed runs, batch {result.batch}, {result.threads} threads, "
                          f"{result.device}. Box: 25th-75th percentile; whiskers: 5th-95th."))


STEPS_GOOD, STEPS_BAD = 1.0, 4.0  # output steps: within one is rounding, four or more is a real difference
SQNR_BAD, SQNR_GOOD = 20.0, 50.0


def parity_section(result: ConversionResult) -> str:
    from qconvert.report.int8_parity import parity_spec

    entries = result.int8_parity
    if not entries:
        return ""
    names = list(dict.fromkeys([e.a for e in entries] + [e.b for e in entries]))
    cells = {}
    for e in entries:
        sqnr = e.sqnr_db
        good = None if sqnr is None else (1.0 if math.isinf(sqnr) else (sqnr - SQNR_BAD) / (SQNR_GOOD - SQNR_BAD))
        cells[(e.a, e.b)] = (good, number(sqnr, ".1f") + (" dB" if sqnr is not None and math.isfinite(sqnr) else ""))
        steps = e.max_steps
        cells[(e.b, e.a)] = (None if steps is None else (STEPS_BAD - steps) / (STEPS_BAD - STEPS_GOOD),
                             f"{number(steps, '.2f')} st")
    chart = svg.heatmap(names, cells, "int8 artifacts against each other",
                        "above the diagonal: SQNR (dB); below: largest difference in output quantization steps")
    return _section("int8-parity", "int8 artifacts against each other", _figure(chart),
                    to_html(parity_spec(entries)))


def training_section(result: ConversionResult) -> str:
    from qconvert.report.training_table import training_spec

    if not result.training:
        return ""
    key = result.metric if result.metric and any(r.after and result.metric in r.after for r in result.training) \
        else "sqnr_db"
    unit = f"{key} (eval)" if key != "sqnr_db" else "SQNR dB"
    bars = [svg.Bar(run.stage, [_finite((run.before or {}).get(key)), _finite((run.after or {}).get(key))])
            for run in result.training if run.before or run.after]
    parts = []
    if bars:
        parts.append(_figure(svg.hbars(bars, unit, "before and after each stage", ["before", "after"], ".4g",
                                       zero=False)))
    curves = [(run.stage, [(e["epoch"], _finite((e.get("metric") or {}).get(result.metric))) for e in run.epochs
                           if _finite((e.get("metric") or {}).get(result.metric)) is not None])
              for run in result.training]
    curves = [(stage, points) for stage, points in curves if len(points) > 1]
    if curves:
        parts.append(_figure(svg.lines(curves, "epoch (0: before training)", f"{result.metric or 'metric'} (eval)",
                                       "metric per epoch")))
    parts.append(to_html(training_spec(result)))
    parts.append(_note("qat's before is the PTQ model it starts from: the bars show QAT against PTQ on the same "
                       "calibration."))
    return _section("training", "training: QAT against PTQ, fine-tuning", *parts)


def pruning_section(run) -> str:
    from qconvert.report.prune_specs import pruning_spec

    if run is None or not run.steps:
        return ""
    points = [(0.0, 0.0)] + [(float(s.step), s.sparsity) for s in run.steps]
    targets = [(0.0, 0.0)] + [(float(s.step), s.target) for s in run.steps]
    kept = [(0.0, 1.0)] + [(float(s.step), s.nonzero / run.nonzero_before) for s in run.steps if run.nonzero_before]
    series = [("sparsity reached", points), ("schedule's target", targets), ("non-zero parameters, × before", kept)]
    return _section("pruning", f"pruning: {run.method}",
                    _figure(svg.lines(series, "step", "share", "pruning steps")), to_html(pruning_spec(run)))


def bundles_section(result: ConversionResult) -> str:
    from qconvert.report.bundles import bundle_spec

    if not result.bundles:
        return ""
    return _section("bundles", "deployment bundles", to_html(bundle_spec(result.bundles)),
                    _note("Each bundle: the artifact at batch 1 with static shapes, manifest.json, SHA256SUMS, golden "
                          "inputs and outputs, verify.py (needs only numpy and the runtime), a model card and this "
                          "page. Check one with `sha256sum -c SHA256SUMS` and `python verify.py` in its folder."))


def conversion_html(result: ConversionResult) -> str:
    from qconvert.report.table import report_spec

    summary = _section("summary", "parity, latency, size, memory, accuracy", to_html(report_spec(result)))
    sections = [summary, pareto_section(result), latency_section(result), parity_section(result)]
    if result.sensitivity is not None:
        sections += sensitivity_sections(result.sensitivity)
    sections += [pruning_section(getattr(result, "pruning", None)), training_section(result),
                 bundles_section(result)]
    title = f"qconvert: {result.model} ({result.framework} {result.format})"
    return _page(title, sections)


# --- sensitivity ----------------------------------------------------------------------------------------

def sensitivity_sections(result) -> list[str]:
    """`result`: qconvert.quant.sensitivity.Sensitivity."""
    from qconvert.report.sensitivity_table import sensitivity_spec

    if not result.layers:
        return []
    bars = [svg.Bar(layer.layer, [_finite(layer.only_sqnr_db), _finite(layer.all_but_sqnr_db)])
            for layer in result.layers]
    chart = svg.hbars(bars, "output SQNR, dB (lower: the layer costs more)", "int8 sensitivity per layer",
                      ["only this layer int8", "all but this layer int8"], ".1f")
    sections = [_section("sensitivity", "int8 sensitivity per layer", _figure(chart),
                         to_html(sensitivity_spec(result)))]
    histograms = []
    for item in result.activations:
        ranges = dict(item.ranges)
        if item.symmetric:
            ranges[f"{item.chosen}, symmetric"] = item.symmetric
        chart = svg.histogram(item.edges, item.counts, ranges, f"{item.layer}: input activation",
                              f"{item.layer} input ({item.tensor})")
        histograms.append(_figure(chart))
    if histograms:
        sections.append(_section(
            "activations", "activation ranges of the most sensitive layers", '<div class="charts">'
            + "".join(histograms) + "</div>",
            _note("Histogram of each layer's input on the calibration data (log counts), with the range every "
                  f"calibration method would clip it to; used here: {result.activations[0].chosen}. The "
                  "symmetric range is the chosen one made symmetric about zero, as --activations symmetric does.")))
    return sections


def sensitivity_html(result, model: str = "") -> str:
    return _page(f"qconvert sensitivity: {model}" if model else "qconvert sensitivity", sensitivity_sections(result))


# --- prune-sweep ----------------------------------------------------------------------------------------

def prune_sweep_html(result) -> str:
    """`result`: qconvert.prune.sweep.SweepResult."""
    from qconvert.report.prune_specs import prune_sweep_spec

    methods = list(dict.fromkeys(p.method for p in result.points))
    kinds = [("", False)] + ([(" + fine-tune", True)] if result.finetune else [])
    series = []
    for method in methods:
        for suffix, finetuned in kinds:
            points = [(s, _finite(v)) for s, v in result.curve(method, finetuned) if _finite(v) is not None]
            if points:
                series.append((method + suffix, points))
    reference = _finite(result.reference.get(result.metric))
    parts = []
    if series:
        parts.append(_figure(svg.lines(series, "sparsity", f"{result.metric} (eval)", "metric against sparsity",
                                       ("unpruned", reference) if reference is not None else None)))
    parts.append(to_html(prune_sweep_spec(result)))
    return _page(f"qconvert prune-sweep: {result.model}", [_section("prune-sweep", "metric against sparsity", *parts)])


def report_html(result, model: str = "") -> str:
    """The page for a ConversionResult, a Sensitivity or a SweepResult."""
    if isinstance(result, ConversionResult):
        return conversion_html(result)
    if hasattr(result, "points"):
        return prune_sweep_html(result)
    return sensitivity_html(result, model)


def write_html(result, path: str | Path, model: str = "") -> Path:
    """Writes report.html (whole or not at all); `model` names the model of a Sensitivity."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(report_html(result, model), encoding="utf-8")
    return path

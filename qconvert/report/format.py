"""The one place numbers become text: every table (rich, Markdown, HTML), every plot label and every
caption formats through `number`, so the renderers cannot disagree on a digit."""

from __future__ import annotations

import math

MISSING = "–"  # a value that was not measured (a failed row, a metric without --eval)


def number(value, spec: str) -> str:
    """`format(value, spec)`; None is MISSING, +inf (identical outputs' SQNR) is "exact"."""
    if value is None:
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return "exact" if value > 0 else ("-inf" if value < 0 else "nan")
    return format(value, spec)


# Per quantity, so that a size or a latency reads the same in every table.
SPECS = {"top1": ".2f", "dice": ".4f", "iou": ".4f", "cosine": ".4f"}


def metrics_text(metrics: dict[str, float] | None) -> str:
    """Task metrics (qconvert.report.accuracy) as "top1 97.50" / "dice 0.8123 iou 0.7011"."""
    if not metrics:
        return MISSING
    return " ".join(f"{name} {number(value, SPECS.get(name, '.4g'))}" for name, value in metrics.items())


def counts_text(counts: dict[str, int]) -> str:
    """Op counts as "Conv ×20, Mul ×3"."""
    return ", ".join(f"{name} ×{number(count, 'd')}" for name, count in counts.items())

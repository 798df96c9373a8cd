"""The report table: parity, speed and size per artifact, the columns users compare."""

from __future__ import annotations

import math

from rich.table import Table

from qconvert.report.accuracy import format_metrics
from qconvert.report.result import ConversionResult


def _num(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "exact" if value > 0 else "-inf"
    return format(value, fmt)


def report_table(result: ConversionResult) -> Table:
    table = Table(
        title=f"{result.model} ({result.framework} {result.format}) · {result.device} · "
        f"{result.threads} threads · batch {result.batch}",
        caption=f"parity on {result.parity_samples} {result.parity_data} samples; time: median of timed runs"
        + (f"; int8 layers kept float: {', '.join(result.float_layers)}" if result.float_layers else "")
        + ("; after QAT the int8 rows' parity floor is checked against the trained QDQ IR (ir_sqnr_db)"
           if any(run.stage == "qat" for run in result.training) else ""),
    )
    for column, justify in [
        ("target", "left"), ("runtime", "left"), ("status", "left"), ("SQNR dB", "right"),
        ("max abs err", "right"), ("top-1 agree", "right"), ("median ms", "right"), ("p90 ms", "right"),
        ("rel. time", "right"), ("size MB", "right"), ("peak RSS MB", "right"),
    ] + ([(f"{result.metric} (eval)", "right")] if result.metric else []):
        table.add_column(column, justify=justify)
    for row in result.rows:
        status = row.status if row.status == "ok" else f"{row.status}: {row.error or ''}"
        style = {"ok": None, "skipped": "yellow"}.get(row.status, "red")
        table.add_row(
            row.target, row.runtime, status, _num(row.sqnr_db, ".1f"), _num(row.max_abs_error, ".2e"),
            _num(row.top1_agreement * 100 if row.top1_agreement is not None else None, ".1f"),
            _num(row.latency_ms, ".2f"), _num(row.latency_p90_ms, ".2f"), _num(row.relative_time, ".2f"),
            _num(row.size_mb, ".3f"), _num(row.peak_rss_mb, ".0f"),
            *([format_metrics(row.metrics)] if result.metric else []), style=style,
        )
    return table

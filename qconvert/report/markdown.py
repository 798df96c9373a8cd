"""The report table as Markdown (bench/RESULTS.md, CI summaries)."""

from __future__ import annotations

from qconvert.report.accuracy import format_metrics
from qconvert.report.result import ConversionResult
from qconvert.report.table import _num

COLUMNS = ["target", "runtime", "status", "SQNR dB", "max abs err", "top-1 agree %", "median ms", "p90 ms",
           "rel. time", "size MB", "peak RSS MB", "convert s"]


def report_markdown(result: ConversionResult) -> str:
    columns = COLUMNS + (["eval " + result.metric] if result.metric else [])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in result.rows:
        status = row.status if row.status == "ok" else f"{row.status}: {row.error or ''}".replace("|", "/")
        cells = [
            row.target, row.runtime, status, _num(row.sqnr_db, ".1f"), _num(row.max_abs_error, ".2e"),
            _num(row.top1_agreement * 100 if row.top1_agreement is not None else None, ".1f"),
            _num(row.latency_ms, ".3f"), _num(row.latency_p90_ms, ".3f"), _num(row.relative_time, ".2f"),
            _num(row.size_mb, ".3f"), _num(row.peak_rss_mb, ".0f"),
            _num(result.load_s if row.target == "source" else row.convert_s, ".2f"),
        ] + ([format_metrics(row.metrics)] if result.metric else [])
        lines.append("| " + " | ".join(cells) + " |")
    if result.int8_parity:
        from qconvert.report.int8_parity import parity_markdown

        lines += ["", "int8 artifacts against each other (same QDQ IR):", "", parity_markdown(result.int8_parity)]
    return "\n".join(lines)

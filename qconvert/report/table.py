"""The report table: parity, speed and size per artifact, the columns users compare. One column spec
(`report_spec`) that the rich table here, the Markdown and the HTML report all render."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.columns import Align, Column, TextTable, Tone, text
from qconvert.report.format import counts_text, metrics_text
from qconvert.report.render import to_rich
from qconvert.report.result import ConversionResult, Row, Status

TONES = {Status.OK: Tone.NORMAL, Status.SKIPPED: Tone.WARN}


def status_text(row: Row) -> str:
    return row.status.value if row.status is Status.OK else f"{row.status.value}: {row.error or ''}"


def row_columns(result: ConversionResult) -> list[Column]:
    columns = [
        text("target", lambda r: r.target), text("runtime", lambda r: r.runtime), text("status", status_text),
        Column("SQNR dB", lambda r: r.sqnr_db, ".1f"), Column("max abs err", lambda r: r.max_abs_error, ".2e"),
        Column("top-1 agree %", lambda r: None if r.top1_agreement is None else r.top1_agreement * 100, ".1f"),
        Column("median ms", lambda r: r.latency_ms, ".3f"), Column("p90 ms", lambda r: r.latency_p90_ms, ".3f"),
        Column("rel. time", lambda r: r.relative_time, ".2f"), Column("size MB", lambda r: r.size_mb, ".3f"),
        Column("zip MB", lambda r: r.zip_mb, ".3f"), Column("peak RSS MB", lambda r: r.peak_rss_mb, ".0f"),
        Column("convert s", lambda r: result.load_s if r.target == "source" else r.convert_s, ".2f"),
    ]
    if result.metric:
        columns.append(Column(f"{result.metric} (eval)", lambda r: metrics_text(r.metrics), None, Align.RIGHT))
    return columns


def caption(result: ConversionResult) -> str:
    in_float = [f"{row.target} {counts_text(row.float_compute)}" for row in result.rows if row.float_compute]
    return (f"parity on {result.parity_samples} {result.parity_data} samples; time: median of timed runs; "
            "zip: deflate level 9"
            + (f"; int8 layers kept float: {', '.join(result.float_layers)}" if result.float_layers else "")
            + (f"; int8 artifacts computing ops in float: {'; '.join(in_float)}" if in_float else "")
            + ("; after QAT the int8 rows' parity floor is checked against the trained QDQ IR (ir_sqnr_db)"
               if any(run.stage == "qat" for run in result.training) else ""))


def report_spec(result: ConversionResult) -> TextTable:
    title = (f"{result.model} ({result.framework} {result.format}) · {result.device} · {result.threads} threads · "
             f"batch {result.batch}")
    return TextTable(title, row_columns(result), result.rows, caption(result),
                     [TONES.get(row.status, Tone.BAD) for row in result.rows])


def report_table(result: ConversionResult) -> Table:
    return to_rich(report_spec(result))

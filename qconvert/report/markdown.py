"""The report as Markdown (bench/RESULTS.md, CI summaries): the same tables as the terminal's."""

from __future__ import annotations

from qconvert.report.render import to_markdown
from qconvert.report.result import ConversionResult
from qconvert.report.table import report_spec


def report_markdown(result: ConversionResult) -> str:
    from qconvert.report.int8_parity import parity_spec
    from qconvert.report.training_table import training_spec

    parts = [to_markdown(report_spec(result))]
    if result.int8_parity:
        parts += ["int8 artifacts against each other (same QDQ IR):", to_markdown(parity_spec(result.int8_parity))]
    if result.training:
        parts += ["training on the IR:", to_markdown(training_spec(result))]
    return "\n\n".join(parts)

"""The report as Markdown (bench/RESULTS.md, CI summaries): the same tables as the terminal's and report.html's,
in report.html's order."""

from __future__ import annotations

from qconvert.report.columns import TextTable
from qconvert.report.render import to_markdown
from qconvert.report.result import ConversionResult
from qconvert.report.table import report_spec


def _titled(table: TextTable) -> list[str]:
    """A section's title, its table, and the caption under it where it has one."""
    return [f"{table.title}:", to_markdown(table)] + ([table.caption] if table.caption else [])


def report_markdown(result: ConversionResult) -> str:
    from qconvert.report.bundles import bundle_spec
    from qconvert.report.int8_parity import parity_spec
    from qconvert.report.prune_specs import pruning_spec
    from qconvert.report.training_table import training_spec

    parts = [to_markdown(report_spec(result))]
    if result.int8_parity:
        parts += ["int8 artifacts against each other (same QDQ IR):", to_markdown(parity_spec(result.int8_parity))]
    if result.sensitivity is not None and result.sensitivity.layers:
        from qconvert.report.sensitivity_table import sensitivity_spec

        parts += _titled(sensitivity_spec(result.sensitivity))
    if result.pruning is not None and result.pruning.steps:
        parts += _titled(pruning_spec(result.pruning))
    if result.training:
        parts += ["training on the IR:", to_markdown(training_spec(result))]
    if result.bundles:
        parts += _titled(bundle_spec(result.bundles))
    return "\n\n".join(parts)

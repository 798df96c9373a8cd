"""The pruning table: each step's sparsity, parameters and (channel pruning) multiply-accumulates."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.result import ConversionResult
from qconvert.report.table import _num


def pruning_table(result: ConversionResult) -> Table:
    run = result.pruning
    frozen = "; ".join(f"{count}× {why}" for why, count in run.frozen.items())
    table = Table(title=f"pruning: {run.method} to {run.sparsity:g}",
                  caption=f"groups left alone: {frozen}" if frozen else None)
    for column in ("step", "target", "sparsity", "parameters", "non-zero", "× params", "MACs", "× MACs", "s"):
        table.add_column(column, justify="right")
    for step in run.steps:
        macs_ratio = step.macs / run.macs_before if step.macs is not None and run.macs_before else None
        table.add_row(_num(step.step, "d"), _num(step.target, ".3f"), _num(step.sparsity, ".3f"),
                      _num(step.params, ",d"), _num(step.nonzero, ",d"), _num(step.nonzero / run.nonzero_before, ".3f"),
                      _num(step.macs, ",d"), _num(macs_ratio, ".3f"), _num(step.seconds, ".1f"))
    return table

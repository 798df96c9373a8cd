"""The pruning table: each step's sparsity, parameters and (channel pruning) multiply-accumulates; its
columns are qconvert.report.prune_specs', shared with the HTML report."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.prune_specs import pruning_spec
from qconvert.report.render import to_rich
from qconvert.report.result import ConversionResult


def pruning_table(result: ConversionResult) -> Table:
    return to_rich(pruning_spec(result.pruning))

"""The prune-sweep table: one row per method, one column per sparsity, the metric straight after pruning
and (with --train) after fine-tuning; its columns are qconvert.report.prune_specs', shared with the HTML
report."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.prune_specs import prune_sweep_spec
from qconvert.report.render import to_rich


def prune_sweep_table(result) -> Table:
    return to_rich(prune_sweep_spec(result))

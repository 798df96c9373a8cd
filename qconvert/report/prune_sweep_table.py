"""The prune-sweep table: one row per method, one column per sparsity, the metric straight after pruning
and (with --train) after fine-tuning."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.table import _num


def prune_sweep_table(result) -> Table:
    sparsities = sorted({p.sparsity for p in result.points})
    reference = result.reference.get(result.metric)
    table = Table(title=f"{result.metric} against sparsity: {result.model}",
                  caption=f"unpruned float IR: {_num(reference, '.4g')} (onnxruntime, --eval set)")
    table.add_column("method", justify="left")
    for sparsity in sparsities:
        table.add_column(f"{sparsity:g}", justify="right")
    kinds = [("", False)] + ([(" + fine-tune", True)] if result.finetune else [])
    for method in dict.fromkeys(p.method for p in result.points):
        for suffix, finetuned in kinds:
            values = dict(result.curve(method, finetuned))
            table.add_row(method + suffix, *(_num(values.get(s), ".4g") for s in sparsities))
    return table

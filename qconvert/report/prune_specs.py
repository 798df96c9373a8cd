"""Column specs of the pruning tables (a conversion's pruning steps, prune-sweep's metric against
sparsity), rendered by the HTML report, and by rich and Markdown through qconvert.report.render."""

from __future__ import annotations

from qconvert.report.columns import Column, TextTable, text
from qconvert.report.format import number


def pruning_spec(run) -> TextTable:
    """`run`: qconvert.report.pruning.PruneRun."""
    frozen = "; ".join(f"{count}× {why}" for why, count in run.frozen.items())
    columns = [
        Column("step", lambda s: s.step, "d"), Column("target", lambda s: s.target, ".3f"),
        Column("sparsity", lambda s: s.sparsity, ".3f"), Column("parameters", lambda s: s.params, ",d"),
        Column("non-zero", lambda s: s.nonzero, ",d"),
        Column("× params", lambda s: s.nonzero / run.nonzero_before if run.nonzero_before else None, ".3f"),
        Column("MACs", lambda s: s.macs, ",d"),
        Column("× MACs", lambda s: s.macs / run.macs_before if s.macs is not None and run.macs_before else None,
               ".3f"),
        Column("s", lambda s: s.seconds, ".1f"),
    ]
    notes = [f"groups left alone: {frozen}"] if frozen else []
    layers = run.last.layers if run.last is not None else []
    if run.magnitudes == "trained" and layers:
        unfolded = sum(bool(layer.get("ranked_as_trained")) for layer in layers)
        notes.append(f"magnitudes as trained (folded BatchNorm divided out) for {unfolded} of {len(layers)} "
                     f"weights, as in the IR for the rest")
    return TextTable(f"pruning: {run.method} to {number(run.sparsity, 'g')}", columns, run.steps,
                     "; ".join(notes) or None)


def prune_sweep_spec(result) -> TextTable:
    """`result`: qconvert.prune.sweep.SweepResult; one record per method (and per method + fine-tune)."""
    sparsities = sorted({p.sparsity for p in result.points})
    kinds = [("", False)] + ([(" + fine-tune", True)] if result.finetune else [])
    records = [(method + suffix, dict(result.curve(method, finetuned)))
               for method in dict.fromkeys(p.method for p in result.points) for suffix, finetuned in kinds]
    columns = [text("method", lambda r: r[0])]
    columns += [Column(number(s, "g"), lambda r, s=s: r[1].get(s), ".4g") for s in sparsities]
    reference = number(result.reference.get(result.metric), ".4g")
    return TextTable(f"{result.metric} against sparsity: {result.model}", columns, records,
                     f"unpruned float IR: {reference} (onnxruntime, --eval set)")

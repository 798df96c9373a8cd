"""Pruning to a sparsity in one step or several: the cubic schedule, a pruning step each, and fine-tuning
between steps (the caller's, holding the masks this returns)."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import onnx_ir as ir

from qconvert.ir.channel_groups import reason_kind
from qconvert.prune.method import PruneKind
from qconvert.prune.schedule import cubic_schedule
from qconvert.prune.step import parameter_counts, prune_step
from qconvert.report.pruning import PruneRun

Masks = dict[str, np.ndarray]
# (model, masks or None, step from 1, steps) -> the fine-tuned model
FineTune = Callable[[ir.Model, "Masks | None", int, int], ir.Model]


def prune_to(model: ir.Model, options, finetune: FineTune | None = None,
             notify: Callable[[str], None] | None = None) -> tuple[ir.Model, PruneRun, Masks | None]:
    """`model` pruned as `options` (qconvert.pipeline.options.PruneOptions) asks: the pruned model, the
    run's record, and for unstructured methods the keep-masks that later training must hold."""
    from qconvert.train.masks import weight_masks

    params, nonzero = parameter_counts(model)
    run, masks = PruneRun(options.method.name, options.sparsity, params, nonzero), None
    if options.method.kind in (PruneKind.LAYER, PruneKind.GLOBAL):
        run.magnitudes = options.magnitudes.value
    schedule = cubic_schedule(options.sparsity, options.steps)
    channels = None
    if options.method.kind is PruneKind.CHANNEL:
        from qconvert.passes.prune_channels import group_channels

        channels = group_channels(model)  # every step's kept counts come from the unpruned ones
    for step, target in enumerate(schedule, start=1):
        if notify is not None:
            notify(f"{options.method.name} {target:.2f} ({step}/{len(schedule)})")
        model, record, report = prune_step(model, options, target, step, channels)
        run.steps.append(record)
        if report is not None:
            run.macs_before = run.macs_before or report.macs_before
            # by kind of reason (each group's own, with its names, stays in the step's layer records)
            run.frozen = dict(Counter(reason_kind(group.frozen) for group in report.groups if group.frozen))
        else:
            masks = weight_masks(model, [layer["name"] for layer in record.layers])
        if step < len(schedule) and finetune is not None:
            model = finetune(model, masks, step, len(schedule))
    return model, run, masks

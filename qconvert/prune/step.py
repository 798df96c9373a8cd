"""One pruning step on the float IR: the method's pass on a copy, and what it changed."""

from __future__ import annotations

import time

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import copy_model
from qconvert.prune.method import PruneKind
from qconvert.report.pruning import PruneStep


def parameter_counts(model: ir.Model) -> tuple[int, int]:
    """Float parameters of the IR (every float initializer's elements), and how many are non-zero."""
    total = nonzero = 0
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is None or not np.issubdtype(tensor.dtype.numpy(), np.floating):
            continue
        array = tensor.numpy()
        total, nonzero = total + array.size, nonzero + int(np.count_nonzero(array))
    return total, nonzero


def prune_step(model: ir.Model, options, target: float, step: int = 1,
               channels: dict[str, int] | None = None) -> tuple[ir.Model, PruneStep, object]:
    """`model`, pruned by the steps before, pruned to `target` by `options.method`
    (qconvert.pipeline.options.PruneOptions), as a new model; the step's record; and the channel pass's own
    report (None for unstructured methods). `channels`: the unpruned model's channel count of each group
    (prune_channels.group_channels), which a channel step's `target` is a share of."""
    began, kind = time.perf_counter(), options.method.kind
    if kind is PruneKind.CHANNEL:
        from qconvert.passes.prune_channels import Importance, prune_channels

        # Unstructured passes count the zeros of the whole weight, the earlier steps' included, so they too
        # take `target` as it is.
        pruned, report = prune_channels(model, target, Importance(options.importance), options.multiple_of,
                                        channels)
        params, nonzero = parameter_counts(pruned)
        record = PruneStep(step, target, 1 - report.params_after / max(report.params_before, 1), params, nonzero,
                           time.perf_counter() - began, macs=report.macs_after,
                           layers=[_as_dict(group) for group in report.groups])
        return pruned, record, report
    from qconvert.passes.prune_magnitude import Magnitudes, PruneScope, prune_global, prune_layerwise

    pruned = copy_model(model)
    scope = PruneScope(depthwise=options.depthwise, keep_first_last=options.keep_first_last)
    if kind is PruneKind.LAYER:
        weights = prune_layerwise(pruned, target, scope, options.magnitudes)
    elif kind is PruneKind.GLOBAL:
        weights = prune_global(pruned, target, scope, options.magnitudes)
    else:
        from qconvert.passes.prune_n_m import prune_n_m

        weights = prune_n_m(pruned, options.method.n, options.method.m, scope)
    params, nonzero = parameter_counts(pruned)
    prunable = sum(w.params for w in weights)
    record = PruneStep(step, target, sum(w.zeros for w in weights) / max(prunable, 1), params, nonzero,
                       time.perf_counter() - began,
                       layers=[_as_dict(w) for w in weights])
    return pruned, record, None


def _as_dict(record) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(record) if is_dataclass(record) else dict(record)

"""LayerNormalization, BatchNormalization (inference), InstanceNormalization."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qconvert.backends.torch.registry import emits


@emits("LayerNormalization")
def layer_norm(b, node):
    axis = int(b.attr(node, "axis", -1))
    shape = node.inputs[0].shape
    scale = b.const(node.inputs[1])
    rank = len(shape) if shape is not None else None
    if scale is not None and rank is not None:
        normalized = list(shape[axis if axis >= 0 else rank + axis:]) if all(
            isinstance(d, int) for d in shape[axis:]) else list(scale.shape)
        if scale.shape != tuple(normalized) and axis == -1:
            normalized = list(scale.shape)
    elif scale is not None and axis == -1:
        normalized = list(scale.shape)
    else:
        raise ValueError(f"LayerNormalization {node.name}: needs a known normalized shape")
    return b.call(F.layer_norm, b.input(node, 0), normalized, b.input(node, 1), b.input(node, 2),
                  float(b.attr(node, "epsilon", 1e-5)))


@emits("BatchNormalization")
def batch_norm(b, node):
    return b.call(F.batch_norm, b.input(node, 0), b.input(node, 3), b.input(node, 4), b.input(node, 1),
                  b.input(node, 2), False, 0.0, float(b.attr(node, "epsilon", 1e-5)))


@emits("InstanceNormalization")
def instance_norm(b, node):
    return b.call(F.instance_norm, b.input(node, 0), None, None, b.input(node, 1), b.input(node, 2),
                  False, 0.0, float(b.attr(node, "epsilon", 1e-5)))


@emits("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def reduce(b, node):
    axes = b.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    axes = [int(a) for a in axes] if axes is not None else b.attr(node, "axes")
    keep = bool(b.attr(node, "keepdims", 1))
    x = b.input(node, 0)
    if axes is None:
        axes = list(range(b.rank(node.inputs[0])))
    function = {"ReduceMean": torch.mean, "ReduceSum": torch.sum, "ReduceMax": torch.amax,
                "ReduceMin": torch.amin}[node.op_type]
    return b.call(function, x, list(axes), keepdim=keep)

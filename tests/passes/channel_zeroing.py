"""Zeroing equals removal: the unpruned model with every weight that reads a removed channel set to zero
computes what the pruned model computes. Built from the pruning report's keep masks, independently of
the pass's own rewriting."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.channel_groups import analyze
from qconvert.ir.values import constant_array, copy_model


def zeroed(model: ir.Model, keep: dict[str, np.ndarray]) -> ir.Model:
    """`model` with the weights of Conv/ConvTranspose/Gemm/MatMul inputs that read a removed channel zeroed
    (a depthwise conv passes its channel on: the layer after it reads it)."""
    copy = copy_model(model)
    tracks = analyze(copy.graph).tracks
    for node in copy.graph:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or node.inputs[0] is None:
            continue
        x, w = node.inputs[0], node.inputs[1]
        mask, weight = keep.get(x.name), constant_array(w)
        if mask is None or mask.all() or weight is None:
            continue
        gone = ~np.repeat(mask, tracks[x.name].inner)
        weight = weight.copy()
        if node.op_type == "Conv":
            if node.attributes.get_int("group", 1) != 1:
                continue
            weight[:, gone] = 0
        elif node.op_type == "Gemm" and node.attributes.get_int("transB", 0):
            weight[:, gone] = 0
        else:  # ConvTranspose [C_in, ...], Gemm [K, N], MatMul [K, N]
            weight[gone] = 0
        w.const_value = ir.tensor(weight, name=w.name)
    return copy

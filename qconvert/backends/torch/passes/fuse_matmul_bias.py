"""Fuse a constant bias Add into the MatMul before it, as a MatMul with a bias input (a torch form).

Before::

    t = MatMul(x, W)        # W: a float32 constant [K, N]
    y = Add(t, b)           # b: a float32 constant [N] (either operand order); t has no other use

After::

    y = MatMul(x, W, b)     # x @ W + b: the torch emitter's one F.linear (addmm), or one dynamic int8 Linear
                            # whose bias is added in the kernel

ONNX's MatMul takes two inputs and Gemm a 2-D x only, so this form exists only in the torch backend's copy
of the IR (qconvert.backends.torch.passes); the emitter reads the third input as the Linear's bias.

Does not fire when the weight is not a 2-D float32 constant, the Add's other operand is not a float32
constant of shape [N], or t is a graph output or read by anything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)


@dataclass
class Match:
    matmul: ir.Node
    add: ir.Node
    bias: ir.Value


class FuseMatMulBias(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return rewrite_matches(model, match, why_not, rewrite, logger, "not fused")


def float_matrix(value: ir.Value | None) -> np.ndarray | None:
    """The 2-D float32 constant a Linear can take as its weight, else None. Any initializer counts, as the
    emitter reads it (a graph input's default too)."""
    array = value.const_value.numpy() if value is not None and value.const_value is not None else None
    return array if array is not None and array.ndim == 2 and array.dtype == np.float32 else None


def match(node: ir.Node) -> Match | None:
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    users = list(node.outputs[0].consumers())
    if len(users) != 1 or users[0].op_type != "Add" or users[0].domain not in ("", "ai.onnx"):
        return None
    add = users[0]
    other = add.inputs[1] if add.inputs[0] is node.outputs[0] else add.inputs[0]
    return Match(node, add, other)


def why_not(found: Match) -> str | None:
    weight = float_matrix(found.matmul.inputs[1])
    if weight is None:
        return "the weight is not a 2-D float32 constant"
    if found.matmul.outputs[0].is_graph_output():
        return "its output is a graph output"
    bias = found.bias.const_value.numpy() if found.bias is not None and found.bias.const_value is not None else None
    if bias is None or bias.shape != (weight.shape[1],) or bias.dtype != np.float32:
        return f"the Add's other operand is not a float32 constant of shape [{weight.shape[1]}]"
    return None


def rewrite(found: Match) -> None:
    matmul, add = found.matmul, found.add
    matmul.resize_inputs(3)
    matmul.replace_input_with(2, found.bias)
    replace_value(add.outputs[0], matmul.outputs[0])  # the sum's name, consumers and graph-output slot
    add.graph.remove(add, safe=True)

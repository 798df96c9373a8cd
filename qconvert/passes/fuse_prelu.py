"""Fuse PReLU as Keras spells it (through tf2onnx) into one ONNX PRelu.

Before (any order of the Add's and the Mul's inputs)::

    p = Relu(x)
    n = Neg(x)
    r = Relu(n)
    m = Mul(r, c)        # c = -alpha, a constant that broadcasts to x
    y = Add(p, m)

After::

    y = PRelu(x, -c)     # the same function: x for x > 0, alpha * x otherwise

Five elementwise ops become one, which every runtime has a kernel for (TFLite PRELU, torch's PReLU), and
the int8 plan quantizes it as one op: left decomposed, tflite-int8 found NEG, RELU, MUL and ADD it cannot
run as one integer op (a face detector's failure).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer, constant_array
from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Match:
    x: ir.Value
    slope: np.ndarray
    nodes: list[ir.Node]  # Relu(x), Neg, Relu(Neg), Mul, then the Add that produces the result
    graph: ir.Graph


class FusePRelu(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return rewrite_matches(model, match, check, rewrite, logger, "not fused")


def _is(node: ir.Node | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


def _negative_branch(value: ir.Value) -> tuple[ir.Node, ir.Node, ir.Node, np.ndarray] | None:
    """(Neg, Relu, Mul, c) when `value` is Mul(Relu(Neg(x)), c) with a float constant c."""
    mul = value.producer()
    if not _is(mul, "Mul") or len(mul.inputs) != 2:
        return None
    for data, constant in (mul.inputs, reversed(mul.inputs)):
        array = constant_array(constant)
        relu = data.producer() if data is not None else None
        if array is None or not np.issubdtype(array.dtype, np.floating) or not _is(relu, "Relu"):
            continue
        neg = relu.inputs[0].producer()
        if _is(neg, "Neg"):
            return neg, relu, mul, array
    return None


def match(add: ir.Node) -> Match | None:
    if not _is(add, "Add") or len(add.inputs) != 2:
        return None
    for positive, negative in (add.inputs, reversed(add.inputs)):
        relu = positive.producer() if positive is not None else None
        branch = _negative_branch(negative) if negative is not None else None
        if not _is(relu, "Relu") or branch is None:
            continue
        neg, neg_relu, mul, c = branch
        if neg.inputs[0] is relu.inputs[0]:
            return Match(relu.inputs[0], -c, [relu, neg, neg_relu, mul, add], add.graph)
    return None


def _broadcasts_to(slope_shape: tuple[int, ...], shape: ir.Shape | None) -> bool:
    """PRelu's slope broadcasts one way only: to x's shape, never widening it."""
    if shape is None or len(slope_shape) > len(shape):
        return False
    for s, d in zip(reversed(slope_shape), reversed(list(shape))):
        if s != 1 and not (isinstance(d, int) and d == s):
            return False
    return True


def check(m: Match) -> str | None:
    for node in m.nodes[:-1]:
        if node.outputs[0].is_graph_output() or any(u.node not in m.nodes for u in node.outputs[0].uses()):
            return f"{node.op_type} {node.name}'s output is used outside the PReLU"
    if not _broadcasts_to(m.slope.shape, m.x.shape):
        return f"slope of shape {m.slope.shape} does not broadcast to the input's {m.x.shape}"
    return None


def rewrite(m: Match) -> None:
    last = m.nodes[-1]
    name = last.name or last.outputs[0].name
    slope = add_initializer(m.graph, f"{name}_prelu_slope", m.slope.astype(np.float32))
    prelu = ir.node("PRelu", [m.x, slope], name=f"{name}_prelu")
    m.graph.insert_after(last, prelu)
    replace_value(last.outputs[0], prelu.outputs[0])
    for node in reversed(m.nodes):
        m.graph.remove(node, safe=True)

"""Fold an inference BatchNormalization into the Conv, Gemm or MatMul(+Add) before it."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors
from qconvert.passes.rewrite import rewrite_matches

logger = logging.getLogger(__name__)

_PRODUCERS = ("Conv", "Gemm", "MatMul")


@dataclasses.dataclass
class Match:
    """What ``match`` found: ``bn(add(producer(x, weight, bias?), add_bias)?)``."""

    bn: ir.Node
    producer: ir.Node  # Conv, Gemm or MatMul
    add: ir.Node | None = None  # the Add after a MatMul, if any

    @property
    def bias(self) -> ir.Value | None:
        """The value that holds the bias: Conv/Gemm input 2, or the Add's constant."""
        if self.add is not None:
            return _other_input(self.add, self.producer.outputs[0])
        inputs = self.producer.inputs
        return inputs[2] if len(inputs) > 2 else None


class FoldBatchNorm(ir.passes.InPlacePass):
    """Fold ``BatchNormalization`` (inference form) into the layer that feeds it.

    Before::

        y = Conv(x, W, B)                              # or Gemm(x, W, B), MatMul(x, W)
        z = BatchNormalization(y, gamma, beta, mean, var)

    After::

        z = Conv(x, W', B')      # s = gamma / sqrt(var + epsilon)
                                 # W' = W * s along the output-channel axis
                                 # B' = (B - mean) * s + beta

    Handles Conv with or without bias (grouped and depthwise included), Gemm with
    transB 0 or 1, and a rank-2 MatMul with constant weight, optionally followed by
    Add of a constant bias. Each BatchNormalization goes through ``match`` (the
    pattern), ``check`` (returns why it must not fold, or None) and ``rewrite``; a
    failed match or check leaves the graph as it was.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return rewrite_matches(model, match, check, rewrite, logger, "not folded")


def match(bn: ir.Node) -> Match | None:
    """The pattern: a BatchNormalization whose input comes from Conv/Gemm/MatMul(+Add)."""
    if not _is_op(bn, "BatchNormalization") or len(bn.inputs) != 5 or bn.inputs[0] is None:
        return None
    producer = bn.inputs[0].producer()
    if producer is None:
        return None
    if _is_op(producer, "Add"):
        for value in producer.inputs:
            before = value.producer() if value is not None else None
            if before is not None and _is_op(before, "MatMul") and len(before.inputs) == 2:
                return Match(bn, before, add=producer)
        return None
    if any(_is_op(producer, op) for op in _PRODUCERS) and len(producer.inputs) >= 2:
        return Match(bn, producer)
    return None


def check(m: Match) -> str | None:
    """Return why ``m`` must not be folded, or None when it can be."""
    bn, producer = m.bn, m.producer
    if _int_attr(bn, "training_mode", 0) != 0 or any(
        out.uses() or out.is_graph_output() for out in bn.outputs[1:]
    ):
        return "BatchNormalization is in training mode (uses batch statistics)"
    if _int_attr(bn, "spatial", 1) != 1:
        return "BatchNormalization has spatial=0 (per-element statistics)"
    for param in bn.inputs[1:]:
        if _constant(param) is None:
            return f"BatchNormalization parameter {_name(param)} is not a constant"
    if producer.graph is not bn.graph:
        return f"{producer.op_type} is in an outer graph"
    if m.add is not None and m.bias is None:
        return "the Add after MatMul does not add a second value"

    # Every value between the producer and the BatchNormalization must feed only the
    # next node, otherwise folding would change what the other consumers see.
    chain = [producer.outputs[0]] + ([m.add.outputs[0]] if m.add is not None else [])
    for value in chain:
        if len(value.uses()) != 1 or value.is_graph_output():
            return f"{value.name} has another consumer besides the BatchNormalization"

    # Weights and bias are rewritten in place, so they must be initializers of their own.
    weight, bias = producer.inputs[1], m.bias
    for value in [weight] + ([bias] if bias is not None else []):
        if value is None or not value.is_initializer() or value.const_value is None:
            return f"{_name(value)} is not a constant initializer"
        if value.is_graph_input():
            return f"{value.name} is a graph input (can be overridden at run time)"
        if len(value.uses()) != 1:
            return f"{value.name} is shared with another node"

    w = weight.const_value.numpy()
    if not np.issubdtype(w.dtype, np.floating):
        return f"weight {weight.name} is not floating point"
    if bias is not None and bias.const_value.numpy().ndim > 2:
        return f"bias {bias.name} has rank > 2"
    if _is_op(producer, "MatMul"):
        # BatchNormalization normalizes axis 1, which is the weight's output axis only
        # when the product is 2-D.
        x = producer.inputs[0]
        if x is None or x.shape is None or len(x.shape) != 2 or w.ndim != 2:
            return "MatMul input or weight is not known to be 2-D"

    channels = w.shape[_out_axis(producer)] if w.ndim >= 2 else None
    for param in bn.inputs[1:]:
        if tuple(_constant(param).shape) != (channels,):
            return f"BatchNormalization parameter {param.name} does not have {channels} channels"
    return None


def rewrite(m: Match) -> None:
    """Scale the weight and bias in place, then bypass and remove the BatchNormalization."""
    bn, producer = m.bn, m.producer
    gamma, beta, mean, var = (_constant(v).numpy().astype(np.float64) for v in bn.inputs[1:])
    epsilon = bn.attributes.get_float("epsilon", 1e-5)
    scale = gamma / np.sqrt(var + epsilon)

    weight = producer.inputs[1]
    w = weight.const_value.numpy()
    broadcast = [1] * w.ndim
    broadcast[_out_axis(producer)] = -1
    _set_constant(weight, w * scale.reshape(broadcast), dtype=w.dtype)
    fold_factors.record(producer.graph, weight.name, scale.reshape(broadcast), gamma)

    bias = m.bias
    if bias is not None:
        b = bias.const_value.numpy().astype(np.float64)
        if _is_op(producer, "Gemm"):
            # Gemm computes alpha*A*B + beta*C; fold its beta into C.
            b = b * producer.attributes.get_float("beta", 1.0)
            producer.attributes.pop("beta", None)
        _set_constant(bias, (b - mean) * scale + beta, dtype=w.dtype)
    else:
        new_bias = ir.Value(name=_unique_name(producer.graph, f"{weight.name}_bn_bias"))
        _set_constant(new_bias, beta - mean * scale, dtype=w.dtype)
        producer.graph.register_initializer(new_bias)
        if _is_op(producer, "MatMul"):
            # MatMul has no bias input: follow it with an Add.
            product = producer.outputs[0]
            m.add = ir.Node("", "Add", [product, new_bias])
            producer.graph.insert_after(producer, m.add)
            summed = m.add.outputs[0]
            summed.name = _unique_name(producer.graph, f"{product.name}_bn")
            summed.type, summed.shape = product.type, product.shape
        else:
            producer.resize_inputs(3)
            producer.replace_input_with(2, new_bias)

    last = (m.add or producer).outputs[0]
    out = bn.outputs[0]
    out_is_graph_output = out.is_graph_output()
    ir.convenience.replace_all_uses_with(out, last, replace_graph_outputs=True)
    bn.graph.remove(bn, safe=True)
    if out_is_graph_output:
        # The fused layer's output stands in for the graph output: same name, type, shape.
        last.name = out.name
        last.type, last.shape = out.type or last.type, out.shape or last.shape


def _out_axis(producer: ir.Node) -> int:
    """The output-channel axis of the weight: Conv [M, C/group, k...] -> 0,
    Gemm transB=1 [N, K] -> 0, Gemm transB=0 and MatMul [K, N] -> 1."""
    return 0 if _is_op(producer, "Conv") or _int_attr(producer, "transB", 0) else 1


def _set_constant(value: ir.Value, array: np.ndarray, dtype: np.dtype) -> None:
    array = array.astype(dtype)
    value.const_value = ir.tensor(array, name=value.name)
    value.type = ir.TensorType(value.const_value.dtype)
    value.shape = ir.Shape(array.shape)


def _constant(value: ir.Value | None) -> ir.TensorProtocol | None:
    if value is None or value.is_graph_input():
        return None  # an initializer listed as graph input can be overridden
    return ir.convenience.get_const_tensor(value)


def _other_input(node: ir.Node, value: ir.Value) -> ir.Value | None:
    others = [v for v in node.inputs if v is not value]
    return others[0] if len(others) == 1 else None


def _unique_name(graph: ir.Graph, base: str) -> str:
    taken = {v.name for v in graph.inputs} | set(graph.initializers)
    taken |= {v.name for node in graph for v in node.outputs}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _is_op(node: ir.Node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in ("", "onnx.ai")


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    return node.attributes.get_int(name, default)


def _name(value: ir.Value | None) -> str:
    return "(missing)" if value is None else repr(value.name)

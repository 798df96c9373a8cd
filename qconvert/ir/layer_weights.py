"""The weight initializers of an IR's layers (Conv, ConvTranspose, Gemm, MatMul), in graph order, with the
axis each layer sums over: what unstructured pruning (qconvert/passes/prune_magnitude.py, prune_n_m.py)
works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class LayerWeight:
    value: ir.Value  # the float initializer
    op: str  # the first layer that reads it, in graph order
    depthwise: bool  # read by a depthwise Conv or ConvTranspose (one input channel per group)
    reduction_axes: set[int]  # the weight's axis each reader sums over (non-negative)
    shared_with_other_ops: bool  # also read by a node that is not a layer's weight input

    @property
    def name(self) -> str:
        return self.value.name

    @property
    def array(self) -> np.ndarray:
        return self.value.const_value.numpy()


def _weight_input(node: ir.Node) -> int | None:
    """Which input of a layer is its weight: Conv, ConvTranspose and Gemm's second; a MatMul's constant
    one (either side, not both)."""
    if node.op_type != "MatMul":
        return 1 if len(node.inputs) > 1 else None
    constant = [i for i, v in enumerate(node.inputs[:2]) if v is not None and v.const_value is not None]
    return constant[0] if len(constant) == 1 else None


def _reduction_axis(node: ir.Node, index: int, rank: int) -> int:
    """The weight axis the layer sums over: Conv's input channels (axis 1), ConvTranspose's (axis 0),
    Gemm's K (axis 0, or 1 with transB), MatMul's K (axis -2 of B, -1 of A)."""
    if node.op_type == "Conv":
        return 1
    if node.op_type == "ConvTranspose":
        return 0
    if node.op_type == "Gemm":
        return 1 if node.attributes.get_int("transB", 0) else 0
    return rank - 2 if index == 1 else rank - 1


def _is_depthwise(node: ir.Node, weight: np.ndarray) -> bool:
    group = node.attributes.get_int("group", 1)
    if node.op_type == "Conv":
        return group > 1 and weight.shape[1] == 1
    return node.op_type == "ConvTranspose" and group > 1 and weight.shape[0] == group and weight.shape[1] == 1


def layer_weights(model: ir.Model) -> list[LayerWeight]:
    """Every float initializer a layer of the main graph reads as its weight, once (a weight several
    layers share is one entry, at its first reader), in graph order. Initializers that are also graph
    inputs are left out: a caller may replace them at run time."""
    found: dict[str, LayerWeight] = {}
    for node in model.graph:
        if node.op_type not in LAYER_OPS or node.domain not in ("", "ai.onnx"):
            continue
        index = _weight_input(node)
        value = node.inputs[index] if index is not None and index < len(node.inputs) else None
        if value is None or not value.is_initializer() or value.is_graph_input() or value.const_value is None:
            continue
        array = value.const_value.numpy()
        if not np.issubdtype(array.dtype, np.floating) or array.ndim < 2:
            continue
        entry = found.get(value.name)
        if entry is None:
            readers = [(user, i) for user, i in value.uses()]
            other = any(user.op_type not in LAYER_OPS or _weight_input(user) != i for user, i in readers)
            entry = found[value.name] = LayerWeight(value, node.op_type, False, set(), other)
        entry.depthwise |= _is_depthwise(node, array)
        entry.reduction_axes.add(_reduction_axis(node, index, array.ndim))
    return list(found.values())

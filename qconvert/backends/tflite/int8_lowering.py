"""The IR's QDQ written in the form whose TensorFlow ops the TFLite converter turns into integer kernels.

Each rewrite keeps the quantized function (the integers each kernel sees are those of the IR's grid):

1. HardSigmoid, which has no TFLite kernel (its float emission is MUL, ADD, RELU6 with nothing quantized
   in between). ``y = clip(a·x + b, 0, 1)`` quantized with (s, zp) is written as
   ``u = x + b/a`` quantized with (s/a, zp), then ``y = a·u``: u's integers are y's (q = round((a·x +
   b)/s) + zp, clamped by the int8 range exactly where y's quantization clamps), so the integer ADD
   does the work and the MUL only rescales by 1. A Relu after the ADD (fused into it) clamps at 0
   where y's range reaches below 0.
2. Softmax over an axis that is not the last: TFLite's SOFTMAX works on the last axis, and the float
   emission over another axis is made of reductions that would run float. It becomes Transpose →
   Softmax(last) → Transpose, each tensor with the QDQ of the value it moves; the first QDQ asks the
   emitter for the IR's arrangement (ops/qdq.py ARRANGEMENT), which is where TRANSPOSE is written (none
   where the tensor is held channels-last and the axis is its channels).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer, constant_array, copy_model

# A QuantizeLinear marked so is emitted in the IR's arrangement rather than as held (ops/qdq.py).
ARRANGEMENT = "qconvert.tflite.arrangement"
LEVELS = {ir.DataType.INT8: (-128, 127), ir.DataType.UINT8: (0, 255)}


def lower_for_tflite(model: ir.Model) -> ir.Model:
    """A copy of the QDQ IR in the TFLite converter's integer form; `model` is left as it is."""
    model = copy_model(model)
    graph = model.graph
    for node in [n for n in graph if n.op_type == "HardSigmoid"]:
        _hard_sigmoid(graph, node)
    for node in [n for n in graph if n.op_type == "Softmax"]:
        _softmax_to_last_axis(graph, node)
    graph.sort()
    return model


def dequantized_from(value: ir.Value) -> ir.Node | None:
    """The DequantizeLinear of a run-time QuantizeLinear that makes `value`, else None."""
    node = value.producer()
    if node is None or node.op_type != "DequantizeLinear" or constant_array(node.inputs[0]) is not None:
        return None
    return node


def only_quantize(value: ir.Value) -> ir.Node | None:
    """The QuantizeLinear that is the only consumer of `value`, else None."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output() or uses[0].node.op_type != "QuantizeLinear":
        return None
    return uses[0].node


def _params(node: ir.Node) -> tuple[float, int, ir.Value]:
    """(scale, zero point, zero-point value) of a QuantizeLinear or DequantizeLinear."""
    scale = float(np.asarray(constant_array(node.inputs[1])).reshape(()))
    zero_point = node.inputs[2] if len(node.inputs) > 2 else None
    return scale, int(np.asarray(constant_array(zero_point)).reshape(())) if zero_point is not None else 0, zero_point


def _node(graph: ir.Graph, before: ir.Node, op: str, inputs: list, name: str, attributes=None) -> ir.Value:
    node = ir.node(op, inputs, attributes, name=name)
    node.outputs[0].name = name
    node.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    graph.insert_before(before, node)
    return node.outputs[0]


def _qdq(graph: ir.Graph, before: ir.Node, x: ir.Value, scale: ir.Value, zero_point: ir.Value,
         in_ir_arrangement: bool = False) -> ir.Value:
    q = ir.node("QuantizeLinear", [x, scale, zero_point], name=f"{x.name}_QuantizeLinear")
    if in_ir_arrangement:  # the emitter materializes the Transpose here (ops/qdq.py)
        q.metadata_props[ARRANGEMENT] = "ir"
    q.outputs[0].name = f"{x.name}_quantized"
    q.outputs[0].type = zero_point.type
    graph.insert_before(before, q)
    return _node(graph, before, "DequantizeLinear", [q.outputs[0], scale, zero_point], f"{x.name}_dequantized")


def _hard_sigmoid(graph: ir.Graph, node: ir.Node) -> None:
    if dequantized_from(node.inputs[0]) is None or (q := only_quantize(node.outputs[0])) is None:
        return  # not an int8 op: left to the float checks
    alpha, beta = node.attributes.get_float("alpha", 0.2), node.attributes.get_float("beta", 0.5)
    scale, zero_point, zp_value = _params(q)
    qmin, qmax = LEVELS[zp_value.dtype] if zp_value is not None else LEVELS[ir.DataType.UINT8]
    if alpha <= 0 or (qmax - zero_point) * scale > 1 + 1e-6:
        return  # u's grid would not clamp at 1 (left to the checks, which refuse HardSigmoid)
    name = node.outputs[0].name
    u = _node(graph, node, "Add", [node.inputs[0], add_initializer(graph, f"{name}_offset", np.float32(beta / alpha))],
              f"{name}_shifted")
    if (qmin - zero_point) * scale < 0:  # y's grid reaches below 0: clamp there (a Relu fused into the ADD)
        u = _node(graph, node, "Relu", [u], f"{name}_clamped")
    u = _qdq(graph, node, u, add_initializer(graph, f"{name}_shifted_scale", np.float32(scale / alpha)),
             zp_value if zp_value is not None else add_initializer(graph, f"{name}_zp", np.uint8(0)))
    y = _node(graph, node, "Mul", [u, add_initializer(graph, f"{name}_alpha", np.float32(alpha))], f"{name}_scaled")
    node.outputs[0].replace_all_uses_with(y)
    graph.remove(node, safe=True)


def _softmax_to_last_axis(graph: ir.Graph, node: ir.Node) -> None:
    x = node.inputs[0]
    rank = len(x.shape) if x.shape is not None else None
    dq, q = dequantized_from(x), only_quantize(node.outputs[0])
    axis = node.attributes.get_int("axis", -1)
    if rank is None or dq is None or q is None or axis % rank == rank - 1:
        return
    axis %= rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    name = node.outputs[0].name
    moved = _node(graph, node, "Transpose", [x], f"{name}_moved", {"perm": perm})
    moved = _qdq(graph, node, moved, dq.inputs[1], dq.inputs[2], in_ir_arrangement=True)
    soft = _node(graph, node, "Softmax", [moved], f"{name}_last", {"axis": rank - 1})
    soft = _qdq(graph, node, soft, q.inputs[1], q.inputs[2])
    back = _node(graph, node, "Transpose", [soft], f"{name}_back", {"perm": [int(i) for i in np.argsort(perm)]})
    node.outputs[0].replace_all_uses_with(back)
    graph.remove(node, safe=True)

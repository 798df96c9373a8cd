"""Fold a per-channel Mul/Add by constants (an exported BatchNormalization, Keras Rescaling/Normalization)
into the Conv before or after it."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors
from qconvert.ir.values import add_initializer, constant_array
from qconvert.passes.rewrite import replace_value

logger = logging.getLogger(__name__)

AFFINE_OPS = ("Mul", "Add", "Sub", "Div")


@dataclasses.dataclass
class ChannelAffine:
    """``y = x * scale`` (Mul, Div) or ``y = x + offset`` (Add, Sub) with one value per channel (axis 1)."""

    node: ir.Node
    x: ir.Value
    kind: str  # "scale" | "offset"
    values: np.ndarray  # float64 [C]: the per-channel scale or offset


def match_affine(node: ir.Node) -> ChannelAffine | None:
    """The node as a per-channel affine step on an NC... tensor, or None.

    The constant broadcasts along the channel axis only ([C,1,1], [1,C,1,1]) or is a scalar;
    Sub and Div count when the activation is the first operand (x - c, x / c)."""
    if node.op_type not in AFFINE_OPS or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    first, second = node.inputs
    constants = [constant_array(v) for v in node.inputs]
    if constants[1] is not None and constants[0] is None:
        x, c = first, constants[1]
    elif constants[0] is not None and constants[1] is None and node.op_type in ("Mul", "Add"):
        x, c = second, constants[0]
    else:
        return None
    if x is None or x.shape is None or len(x.shape) < 3 or not isinstance(x.shape[1], int):
        return None
    if not np.issubdtype(c.dtype, np.floating) or x.dtype != ir.DataType.FLOAT or not np.all(np.isfinite(c)):
        return None
    rank, channels = len(x.shape), x.shape[1]
    if c.ndim > rank:
        return None
    dims = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(dims) if i != 1) or dims[1] not in (1, channels):
        return None
    values = np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,)).copy()
    if node.op_type == "Div":
        if not np.all(values != 0):
            return None
        values = 1.0 / values
    elif node.op_type == "Sub":
        values = -values
    return ChannelAffine(node, x, "scale" if node.op_type in ("Mul", "Div") else "offset", values)


class FoldChannelAffine(ir.passes.InPlacePass):
    """Fold per-channel scales and offsets into the Conv that produces or consumes them.

    tf2onnx writes an inference Keras BatchNormalization as ``x * s + b`` with [1,C,1,1] constants, and
    Keras Rescaling / Normalization as Mul/Add (or Sub/Div) by constants after the image input. As
    separate ops they would each need their own int8 requantization.

    Backward, into the Conv that produces x (x has no other consumer)::

        y = Conv(x, W, B); z = Add(Mul(y, s), b)    ->    z = Conv(x, W·s[o], B·s + b)

    Forward, into the Conv that is the only consumer (after an activation, or at the graph input)::

        z = Add(Mul(x, s), b); y = Conv(z, W, B)    ->    y = Conv(x, W·s[i], B + Σ W·b[i])

    A scale folds forward with any padding (a zero pad stays zero when scaled). An offset folds forward
    only into a Conv that pads nothing: a padded border would see b where the original saw 0.
    Both folds are exact in real arithmetic; in float32 they differ by rounding only (~1e-6 relative).
    Grouped and depthwise Convs included (each output channel reads its own group's inputs). What does
    not fold stays as it is (ChannelAffineToConv makes it one per-channel op for int8).

    Two steps make more of them foldable, both exact: an inference BatchNormalization node that
    FoldBatchNorm left (tf2onnx keeps one after a Relu) is split into its Mul and Add first, and a Mul/Add
    by a constant followed by a Transpose (Keras preprocessing on the NHWC input, before tf2onnx's
    Transpose to NCHW) moves after it, its constant transposed.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in [n for n in graph if n.op_type == "BatchNormalization"]:
            modified |= _split_batchnorm(node)
        changed = True
        while changed:  # a Mul -> Add -> Transpose chain moves and folds one step at a time
            changed = False
            for node in list(graph):
                if node.graph is None:
                    continue  # removed by an earlier fold in this sweep
                if _swap_with_transpose(node):
                    changed = modified = True
                    continue
                affine = match_affine(node)
                if affine is None:
                    continue
                backward = _fold_backward(affine)
                reason = backward and _fold_forward(affine)
                if reason is None:
                    changed = modified = True
                else:
                    logger.debug("%s %s not folded: %s; %s", node.op_type, node.name, backward, reason)
        if modified:
            graph.sort()
        return ir.passes.PassResult(model, modified=modified)


def _split_batchnorm(bn: ir.Node) -> bool:
    """An inference BatchNormalization that FoldBatchNorm left (no Conv before it) as Mul and Add by
    per-channel constants, s = gamma / sqrt(var + eps) and b = beta - mean·s, which then fold or
    become one per-channel op."""
    if bn.domain not in ("", "ai.onnx") or len(bn.inputs) != 5 or bn.attributes.get_int("training_mode", 0):
        return False
    if any(out.uses() or out.is_graph_output() for out in bn.outputs[1:]):
        return False
    x = bn.inputs[0]
    params = [constant_array(v) for v in bn.inputs[1:]]
    if x is None or x.shape is None or len(x.shape) < 3 or any(p is None or p.ndim != 1 for p in params):
        return False
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + bn.attributes.get_float("epsilon", 1e-5))
    shape = (-1, *[1] * (len(x.shape) - 2))
    graph, name = bn.graph, bn.name or bn.outputs[0].name
    s = add_initializer(graph, f"{name}_scale", scale.reshape(shape).astype(np.float32))
    b = add_initializer(graph, f"{name}_offset", (beta - mean * scale).reshape(shape).astype(np.float32))
    mul = ir.node("Mul", [x, s], name=f"{name}_mul")
    add = ir.node("Add", [mul.outputs[0], b], name=f"{name}_add")
    for step in (mul, add):
        step.outputs[0].type, step.outputs[0].shape = x.type, x.shape
    mul.outputs[0].name = f"{name}_scaled"
    graph.insert_after(bn, [mul, add])
    replace_value(bn.outputs[0], add.outputs[0])
    graph.remove(bn, safe=True)
    return True


def _swap_with_transpose(node: ir.Node) -> bool:
    """op(x, c) -> Transpose as Transpose -> op(x', transpose(c)): the same elementwise values, with the
    constant now on the channel axis the Conv after the Transpose reads (Keras Rescaling and
    Normalization run on the NHWC input before tf2onnx's Transpose to NCHW)."""
    if node.op_type not in AFFINE_OPS or len(node.inputs) != 2 or node.outputs[0].is_graph_output():
        return False
    constants = [constant_array(v) for v in node.inputs]
    if sum(c is not None for c in constants) != 1 or (constants[0] is not None and node.op_type in ("Sub", "Div")):
        return False
    index = 0 if constants[0] is None else 1
    x, c = node.inputs[index], constants[1 - index]
    use = _sole_consumer(node.outputs[0])
    if use is None or use.node.op_type != "Transpose" or x is None or x.shape is None:
        return False
    transpose, rank = use.node, len(x.shape)
    perm = transpose.attributes.get_ints("perm", list(reversed(range(rank))))
    if c.ndim > rank or any(cd != 1 and cd != d for d, cd in zip(x.shape.dims[rank - c.ndim:], c.shape)):
        return False  # the constant would broadcast x to a larger shape
    moved = add_initializer(node.graph, f"{node.inputs[1 - index].name}_transposed",
                            np.transpose(c.reshape((1,) * (rank - c.ndim) + c.shape), perm).copy())
    y, t = node.outputs[0], transpose.outputs[0]
    shape = t.shape
    ir.convenience.replace_all_uses_with(t, y, replace_graph_outputs=True)
    transpose.replace_input_with(0, x)
    node.replace_input_with(index, t)
    node.replace_input_with(1 - index, moved)
    y.name, t.name = t.name, y.name  # the Transpose's output name stays the graph's
    t.shape, y.shape = ir.Shape([x.shape[p] for p in perm]), shape
    return True


def _conv_weights(conv: ir.Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx") or len(conv.inputs) < 2:
        return None
    w = constant_array(conv.inputs[1])
    b = constant_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
    if w is None or w.dtype != np.float32 or (len(conv.inputs) > 2 and conv.inputs[2] is not None and b is None):
        return None
    return w, b


def _sole_consumer(value: ir.Value) -> ir.Usage | None:
    uses = list(value.uses())
    return uses[0] if len(uses) == 1 and not value.is_graph_output() else None


def _set_weights(conv: ir.Node, w: np.ndarray, b: np.ndarray | None, factor: np.ndarray | None = None) -> None:
    """New initializers (the old ones may be shared with another layer); `factor`: what the weight was
    multiplied by (fold_factors)."""
    graph = conv.graph
    name = conv.name or conv.outputs[0].name
    old = conv.inputs[1].name
    weight = add_initializer(graph, f"{name}_weight_folded", w.astype(np.float32))
    conv.replace_input_with(1, weight)
    fold_factors.rename(graph, old, weight.name)
    if factor is not None:
        fold_factors.record(graph, weight.name, factor)
    if b is not None:
        if len(conv.inputs) < 3:
            conv.resize_inputs(3)
        conv.replace_input_with(2, add_initializer(graph, f"{name}_bias_folded", b.astype(np.float32)))


def _remove(affine: ChannelAffine, replacement: ir.Value) -> None:
    node = affine.node
    replace_value(node.outputs[0], replacement)
    node.graph.remove(node, safe=True)


def _fold_backward(affine: ChannelAffine) -> str | None:
    producer = affine.x.producer()
    if producer is None or _conv_weights(producer) is None:
        return "x is not a Conv output with constant weights"
    if _sole_consumer(affine.x) is None:
        return "the Conv output has another consumer"
    w, b = _conv_weights(producer)
    w, s = w.astype(np.float64), affine.values
    if w.shape[0] != len(s):
        return "channel count differs from the Conv's outputs"
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    factor = None
    if affine.kind == "scale":
        factor = s.reshape(-1, *[1] * (w.ndim - 1))
        w, b = w * factor, b * s
    else:
        b = b + s
    _set_weights(producer, w, b, factor)
    _remove(affine, producer.outputs[0])
    return None


def _input_channel_map(w: np.ndarray, group: int) -> np.ndarray:
    """[Cout, Cin/group]: which input channel each weight column reads."""
    out_channels, per_group = w.shape[0], w.shape[1]
    group_of_output = np.arange(out_channels) // (out_channels // group)
    return group_of_output[:, None] * per_group + np.arange(per_group)[None, :]


def _pads_nothing(conv: ir.Node) -> bool:
    if conv.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    pads = conv.attributes.get("pads")
    return pads is None or not any(pads.as_ints())


def _fold_forward(affine: ChannelAffine) -> str | None:
    """Why it cannot fold into the next Conv, or None after folding it."""
    reason = _fold_forward_check(affine)
    if reason is not None:
        return reason
    use = _sole_consumer(affine.node.outputs[0])
    conv = use.node
    w, b = _conv_weights(conv)
    w = w.astype(np.float64)
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    channel = _input_channel_map(w, conv.attributes.get_int("group", 1))
    per_column = affine.values[channel].reshape(*channel.shape, *[1] * (w.ndim - 2))
    if affine.kind == "scale":
        w = w * per_column
    else:
        b = b + (w * per_column).reshape(w.shape[0], -1).sum(axis=1)
    _set_weights(conv, w, b, per_column if affine.kind == "scale" else None)
    conv.replace_input_with(0, affine.x)
    affine.node.graph.remove(affine.node, safe=True)
    return None


def _fold_forward_check(affine: ChannelAffine) -> str | None:
    use = _sole_consumer(affine.node.outputs[0])
    if use is None or use.idx != 0 or _conv_weights(use.node) is None:
        return "its output is not the only input of one Conv with constant weights"
    conv = use.node
    w, _ = _conv_weights(conv)
    if w.shape[1] * conv.attributes.get_int("group", 1) != len(affine.values):
        return "channel count differs from the Conv's inputs"
    if affine.kind == "offset" and not _pads_nothing(conv):
        return "the Conv pads its input: an offset would reach the padded border"
    return None

"""Where QDQ goes: which nodes are computed in int8, which tensors get a QuantizeLinear/DequantizeLinear
pair, which tensors must share one scale, which take a fixed scale, and which constants become integers.

This module is the one place the placement rules live (ARCHITECTURE.md, Contracts). The rule sets below
are importable names: every int8 backend reads them instead of keeping its own list.

Op families, and what each gets (x: activation input, y: output):

- ``WEIGHTED_OPS`` Conv (depthwise and grouped included), ConvTranspose (group 1), Gemm, MatMul:
  x and y quantized, y with a scale of its own. The weight is int8, symmetric, narrow range, one scale
  per output channel (a depthwise Conv's [C, 1, kh, kw] weight: one per channel, axis 0, like any
  Conv); the bias is int32 with scale s_x·s_w. A MatMul of two activations quantizes both.
- ``BINARY_OPS`` Add, Mul, of two activations (residual Add, squeeze-excitation x·sigmoid(fc),
  HardSwish as x·HardSigmoid(x), SiLU as x·Sigmoid(x)) or of an activation and a finite float
  constant (HardSwish's x + 3, the bias Add after a MatMul): requantizing, y with its own scale.
  A constant operand is quantized like a weight, per tensor (a scalar is exact: q = ±127).
- ``FUSED_ACTIVATIONS`` Relu, and Clip with constant bounds (Relu6): the only consumer of a
  ``FUSING_OPS`` output (weighted or binary) is part of that unit, with no QDQ in between; the unit's
  output is the activation's (the int8 kernel's clamp does it).
- ``REQUANTIZING_OPS`` Sigmoid, HardSigmoid, HardSwish, Tanh, Softmax, LeakyRelu, PRelu, and a Relu or
  Clip that fuses into nothing: x and y quantized, y with its own scale, or the fixed one of
  ``FIXED_OUTPUT``. PRelu stays one op (TFLite PRELU, torch's quantized PReLU); its slope is quantized
  like a weight, per tensor.
- ``FIXED_OUTPUT`` the output scales TFLite's integer kernels require, for every backend (one IR serves
  all): Sigmoid (LOGISTIC) and Softmax 1/256 with zero point -128 (int8) / 0 (uint8), Tanh 1/128 with
  zero point 0 (int8) / 128 (uint8). A shared-scale group holding such an output takes its scale.
- ``SAME_SCALE_OPS`` ops that move or select values, or average them (an output never leaves its input's
  range): x and y share one scale and zero point, so no backend requantizes around them (TFLite requires
  it for MAX_POOL_2D, AVERAGE_POOL_2D, CONCATENATION, PAD, RESHAPE, RESIZE_*, SLICE, SPLIT, TRANSPOSE...).
  MaxPool, GlobalMaxPool, AveragePool, GlobalAveragePool, ReduceMean over the spatial axes of an NCHW
  tensor, Resize (nearest and linear: cubic overshoots its input's range and is left float), Pad (edge,
  reflect, or constant 0: a non-zero pad value may lie outside the range), Split, Slice, Concat,
  Reshape, Transpose, Flatten, Squeeze, Unsqueeze, DepthToSpace, SpaceToDepth. A Concat with an input
  from a fixed-scale group and another not from that same rule requantizes instead (y its own scale):
  a shared scale would clip the other inputs to [0, 1).

Which nodes are quantized: the weighted ops and the binary ops of two activations always (the *layers*
that mixed precision can keep float); every other op above when one of its activation inputs or outputs
is already quantized (spreading both ways until nothing changes), so a region of int8 ops has QDQ at
its borders only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from qconvert.ir.union_find import UnionFind

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
BINARY_OPS = frozenset({"Add", "Mul"})
FUSING_OPS = WEIGHTED_OPS | BINARY_OPS
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip"})
REQUANTIZING_OPS = frozenset({"Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax", "LeakyRelu", "PRelu",
                              "Relu", "Clip"})
SAME_SCALE_OPS = frozenset({
    "MaxPool", "GlobalMaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Resize", "Pad", "Split",
    "Slice", "Concat", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "DepthToSpace", "SpaceToDepth",
})
# Older names, kept for the backends that import them.
COMPUTE = WEIGHTED_OPS
SAME_SCALE = SAME_SCALE_OPS


@dataclass(frozen=True)
class FixedScale:
    """An output scale and zero point that the op's integer kernel fixes, whatever the calibration saw."""

    scale: float
    zero_points: tuple[tuple[str, int], ...]  # (activation dtype, zero point)

    def params(self, dtype: str) -> tuple[np.float32, int]:
        return np.float32(self.scale), dict(self.zero_points)[dtype]


_UNIT_INTERVAL = FixedScale(1.0 / 256.0, (("int8", -128), ("uint8", 0)))  # [0, 1)
FIXED_OUTPUT: dict[str, FixedScale] = {
    "Sigmoid": _UNIT_INTERVAL,
    "Softmax": _UNIT_INTERVAL,
    "Tanh": FixedScale(1.0 / 128.0, (("int8", 0), ("uint8", 128))),  # [-1, 1)
}


@dataclass
class Layer:
    """A node computed in int8 with an output scale of its own."""

    node: ir.Node
    inputs: list[ir.Value]  # activation inputs that get QDQ
    output: ir.Value  # the unit's output: after a fused Relu/Clip
    weight: ir.Value | None = None  # a constant that becomes int8: weight, PRelu slope, binary operand
    weight_axis: int | None = None  # the weight's output-channel axis; None: one scale for the tensor
    bias: ir.Value | None = None
    fused: ir.Node | None = None  # the Relu/Clip folded into the unit
    weight_index: int = 1  # the node input that `weight` is


@dataclass
class Plan:
    layers: list[Layer] = field(default_factory=list)
    tensors: list[ir.Value] = field(default_factory=list)  # activations that get QDQ, in graph order
    groups: dict[str, str] = field(default_factory=dict)  # tensor name -> name of its shared-scale group
    fixed: dict[str, FixedScale] = field(default_factory=dict)  # group name -> its fixed output scale

    def group_members(self) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {}
        for name in (t.name for t in self.tensors):
            members.setdefault(self.groups.get(name, name), []).append(name)
        return members


def layer_name(node: ir.Node) -> str:
    return node.name or f"{node.op_type}_{node.outputs[0].name}"


def _is_constant(value: ir.Value | None) -> bool:
    return value is not None and value.const_value is not None


def _constant(value: ir.Value | None) -> np.ndarray | None:
    """An initializer's or a Constant node's data."""
    if value is None or value.is_graph_input():
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _is_static(value: ir.Value) -> bool:
    """An initializer or a Constant node's output."""
    producer = value.producer()
    return _is_constant(value) or (producer is not None and producer.op_type == "Constant")


def _is_float(value: ir.Value | None) -> bool:
    return value is not None and value.dtype in (ir.DataType.FLOAT, None)


def _is_activation(value: ir.Value | None) -> bool:
    return value is not None and _is_float(value) and not _is_static(value)


def _weight_axis(node: ir.Node) -> int:
    if node.op_type == "Conv":
        return 0  # [out, in/groups, kh, kw]: a depthwise Conv's [C, 1, kh, kw] gets one scale per channel
    if node.op_type == "ConvTranspose":
        return 1  # [in, out/groups, kh, kw]; per-channel needs groups == 1 (checked in _weighted)
    if node.op_type == "Gemm":
        return 0 if node.attributes.get_int("transB", 0) else 1
    weight = node.inputs[1]
    return len(weight.shape) - 1 if weight.shape is not None else 1  # MatMul: [..., K, N]


def _fused_activation(node: ir.Node, graph: ir.Graph) -> ir.Node | None:
    output = node.outputs[0]
    users = list(output.uses())
    if len(users) != 1 or output in graph.outputs:
        return None
    user = users[0].node
    if user.op_type not in FUSED_ACTIVATIONS or users[0].idx != 0 or not _constant_bounds(user):
        return None
    return user


def _constant_bounds(node: ir.Node) -> bool:
    """A Relu, or a Clip whose bounds are known before run time (the int8 clamp needs them)."""
    return node.op_type != "Clip" or all(v is None or _is_static(v) for v in node.inputs[1:])


def _weighted(node: ir.Node, graph: ir.Graph) -> Layer | None:
    op = node.op_type
    data, weight = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    if data is None or _is_constant(data) or weight is None:
        return None
    if op == "Gemm" and node.attributes.get_int("transA", 0):
        return None
    if op == "ConvTranspose" and node.attributes.get_int("group", 1) != 1:
        return None
    fused = _fused_activation(node, graph)
    output = fused.outputs[0] if fused else node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 and _is_constant(node.inputs[2]) else None
    if bias is not None and len(bias.shape) != 1:
        bias = None  # a 2-D Gemm C stays float
    if _is_constant(weight):
        return Layer(node, [data], output, weight, _weight_axis(node), bias, fused)
    if op == "MatMul":  # activation × activation (attention scores)
        return Layer(node, [data, weight], output, fused=fused)
    return None


_SHAPE_ARITHMETIC = {"Shape", "Size"}
_SHAPE_STEPS = {"Cast", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Add", "Sub", "Mul", "Div", "Floor",
                "Ceil", "Reshape", "Identity"}


def _shape_derived(value: ir.Value, depth: int = 8) -> bool:
    """Whether the value is computed from a tensor's shape (a Resize size scaled in float): shape
    arithmetic, never an activation to quantize."""
    producer = value.producer()
    if producer is None or depth == 0:
        return False
    if producer.op_type in _SHAPE_ARITHMETIC:
        return True
    return producer.op_type in _SHAPE_STEPS and any(
        v is not None and not _is_static(v) and _shape_derived(v, depth - 1) for v in producer.inputs)


def _binary(node: ir.Node, graph: ir.Graph) -> Layer | None:
    """Add/Mul of two activations, or of an activation and a finite float constant."""
    if len(node.inputs) != 2 or any(v is None or _shape_derived(v) for v in node.inputs):
        return None
    fused = _fused_activation(node, graph)
    output = fused.outputs[0] if fused else node.outputs[0]
    if all(_is_activation(v) for v in node.inputs):
        return Layer(node, list(node.inputs), output, fused=fused)
    for index in (0, 1):
        constant, data = _constant(node.inputs[index]), node.inputs[1 - index]
        if (constant is not None and _is_activation(data) and constant.dtype == np.float32
                and np.all(np.isfinite(constant)) and _is_constant(node.inputs[index])):
            return Layer(node, [data], output, node.inputs[index], None, fused=fused, weight_index=index)
    return None


def _requantizing(node: ir.Node) -> Layer | None:
    data = node.inputs[0] if node.inputs else None
    if not _is_activation(data) or not _constant_bounds(node):
        return None
    if node.op_type == "PRelu":
        slope = node.inputs[1] if len(node.inputs) > 1 else None
        if slope is None or not _is_constant(slope) or _constant(slope).dtype != np.float32:
            return None  # a slope known only at run time stays float
        return Layer(node, [data], node.outputs[0], slope, None)
    return Layer(node, [data], node.outputs[0])


def _is_layer_node(node: ir.Node) -> bool:
    return (node.domain in ("", "ai.onnx") and bool(node.outputs) and _is_float(node.outputs[0]))


def find_layers(graph: ir.Graph) -> list[Layer]:
    """The layers: weighted ops, and Add/Mul of two activations. Mixed precision and the sensitivity
    analysis keep these float by name; the other int8 ops follow them (plan_quantization)."""
    layers = []
    for node in graph:
        if not _is_layer_node(node):
            continue
        layer = None
        if node.op_type in WEIGHTED_OPS:
            layer = _weighted(node, graph)
        elif node.op_type in BINARY_OPS and len(node.inputs) == 2 and all(_is_activation(v) for v in node.inputs):
            layer = _binary(node, graph)
        if layer is not None:
            layers.append(layer)
    return layers


# -- ops that follow the layers ----------------------------------------------------------------------
def is_spatial_mean(node: ir.Node) -> bool:
    """A ReduceMean over H and W of an NCHW tensor (a global average pool)."""
    x = node.inputs[0]
    if x is None or x.shape is None or len(x.shape) != 4:
        return False
    axes = node.attributes.get_ints("axes", None)
    if axes is None and len(node.inputs) > 1:
        array = _constant(node.inputs[1])
        axes = None if array is None else [int(a) for a in np.reshape(array, -1)]
    return bool(axes) and {a % 4 for a in axes} == {2, 3}


def _keeps_range(node: ir.Node) -> bool:
    """Whether a SAME_SCALE_OPS node keeps its input's range here (its attributes allow it)."""
    op = node.op_type
    if op == "ReduceMean":
        return is_spatial_mean(node)
    if op == "Resize":
        return node.attributes.get_string("mode", "nearest") in ("nearest", "linear")
    if op == "Pad":
        if node.attributes.get_string("mode", "constant") != "constant":
            return True
        value = node.inputs[2] if len(node.inputs) > 2 else None
        array = _constant(value) if value is not None else np.zeros(())
        return array is not None and array.size <= 1 and not np.any(array)
    return True


def _data_inputs(node: ir.Node) -> list[ir.Value]:
    """The activation inputs that share the node's scale (Concat: all; others: the first)."""
    values = [v for v in node.inputs if v is not None] if node.op_type == "Concat" else node.inputs[:1]
    return [v for v in values if _is_activation(v)]


def _following(node: ir.Node, graph: ir.Graph, fused: set[ir.Node]) -> Layer | list[ir.Value] | None:
    """A node that is int8 when its neighbours are: a Layer (own output scale), or for a same-scale op
    the values that share one scale, or None when it stays float whatever its neighbours are."""
    if not _is_layer_node(node) or node in fused:
        return None
    op = node.op_type
    if op in SAME_SCALE_OPS:
        data = _data_inputs(node)
        if not data or not _keeps_range(node) or not all(_is_float(o) for o in node.outputs):
            return None
        return [*data, *node.outputs]
    if op in BINARY_OPS:
        return _binary(node, graph)
    if op in REQUANTIZING_OPS:
        return _requantizing(node)
    return None


def plan_quantization(graph: ir.Graph, exclude: set[str] = frozenset()) -> Plan:
    """The plan for all layers except those named in `exclude` (kept float: mixed precision)."""
    every = find_layers(graph)
    layers = [layer for layer in every if layer_name(layer.node) not in exclude]
    chosen: dict[str, ir.Value] = {}

    def choose(values) -> None:
        for value in values:
            if _is_activation(value):
                chosen[value.name] = value

    for layer in layers:
        choose([*layer.inputs, layer.output])
    # A unit kept float keeps its activation float too (no int8 op that the full plan does not have).
    fused = {layer.fused for layer in every if layer.fused is not None}
    anchored = {layer.node for layer in layers}
    candidates = {}
    for node in graph:
        if node not in anchored and layer_name(node) not in exclude:
            found = _following(node, graph, fused)
            if found is not None:
                candidates[node] = found
    for found in list(candidates.values()):  # a Relu that an Add/Mul absorbs is no op of its own
        if isinstance(found, Layer) and found.fused is not None:
            candidates.pop(found.fused, None)
    # What a unit kept float computes stays float up to the next int8 layer: spreading into a same-scale
    # op after it would put a QuantizeLinear on its output, and TFLite's converter then computes that
    # unit in int8 (it fuses the activation and takes the output range for the whole unit).
    kept_float = {v.name for layer in every if layer_name(layer.node) in exclude
                  for v in (layer.output, layer.node.outputs[0])}
    shared: list[tuple[ir.Node, list[ir.Value]]] = []
    changed = True
    while changed:  # spread both ways: an int8 neighbour makes the op int8
        changed = False
        for node, found in list(candidates.items()):
            values = found if isinstance(found, list) else [*found.inputs, found.output]
            if not any(v.name in chosen for v in values) or any(v.name in kept_float for v in values):
                continue
            del candidates[node]
            changed = True
            choose(values)
            if isinstance(found, Layer):
                layers.append(found)
            else:
                shared.append((node, found))
    order = {v.name: i for i, v in enumerate(_values_in_order(graph))}
    node_order = {node: i for i, node in enumerate(graph)}
    layers.sort(key=lambda layer: node_order[layer.node])
    tensors = sorted(chosen.values(), key=lambda v: order.get(v.name, -1))
    groups, fixed = _share_scales(layers, sorted(shared, key=lambda s: node_order[s[0]]))
    return Plan(layers, tensors, {t.name: groups.find(t.name) for t in tensors}, fixed)


def _share_scales(layers: list[Layer], shared: list[tuple[ir.Node, list[ir.Value]]]
                  ) -> tuple[UnionFind, dict[str, FixedScale]]:
    """Union the same-scale ops' values in graph order; a fixed output scale spreads to its group."""
    groups = UnionFind()  # over tensor names
    fixed: dict[str, FixedScale] = {}  # root name -> rule, kept current through unions
    for layer in layers:
        rule = FIXED_OUTPUT.get(layer.node.op_type)
        if rule is not None:
            fixed[layer.output.name] = rule
    for node, values in shared:
        roots = {groups.find(v.name) for v in values if _is_activation(v)}
        rules = {fixed.get(groups.find(v.name)) for v in values if v not in node.outputs}
        if node.op_type == "Concat" and len(rules) > 1:
            # One input has a fixed scale that another does not: the Concat requantizes instead.
            continue
        first, *rest = sorted(roots)
        for root in rest:
            groups.union(first, root)
        rule = next((r for r in rules if r is not None), None)
        if rule is not None:
            fixed[groups.find(first)] = rule
    return groups, {root: rule for root, rule in fixed.items() if groups.find(root) == root}


def _values_in_order(graph: ir.Graph) -> list[ir.Value]:
    values = list(graph.inputs)
    for node in graph:
        values.extend(node.outputs)
    return values

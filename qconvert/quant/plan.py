"""Where QDQ goes: which nodes are quantized layers, which tensors get a QuantizeLinear/DequantizeLinear
pair, which tensors must share one scale, and which weights and biases become integers.

Rules (the Contracts section of ARCHITECTURE.md):
- A *layer* is a node computed in int8: Conv, ConvTranspose, Gemm, MatMul (one weight or two activations),
  Add of two activations, AveragePool, GlobalAveragePool. Its activation inputs and its output are quantized.
- A Relu or Clip that is the only consumer of a Conv/ConvTranspose/Gemm/MatMul output is part of that unit:
  no QDQ between them; the unit's output is the activation's output (its range starts at 0, so the int8
  kernel's clamp does the Relu).
- Scale-preserving ops (MaxPool, Resize, Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat,
  DepthToSpace, SpaceToDepth) whose
  input is quantized get QDQ on their output too, with the *same* scale and zero point as their inputs: no
  backend needs to requantize around them.
- Weights: int8 per output channel (or per tensor), symmetric. Bias: int32 with scale s_in·s_w.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
POOLS = {"AveragePool", "GlobalAveragePool"}
FUSED_ACTIVATIONS = {"Relu", "Clip"}
SAME_SCALE = {"MaxPool", "Resize", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat",
              "DepthToSpace", "SpaceToDepth"}


@dataclass
class Layer:
    node: ir.Node
    inputs: list[ir.Value]  # activation inputs that get QDQ
    output: ir.Value  # the unit's output: after a fused Relu/Clip
    weight: ir.Value | None = None
    weight_axis: int | None = None  # the output-channel axis of the weight
    bias: ir.Value | None = None
    fused: ir.Node | None = None  # the Relu/Clip folded into the unit


@dataclass
class Plan:
    layers: list[Layer] = field(default_factory=list)
    tensors: list[ir.Value] = field(default_factory=list)  # activations that get QDQ, in graph order
    groups: dict[str, str] = field(default_factory=dict)  # tensor name -> name of its shared-scale group

    def group_members(self) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {}
        for name in (t.name for t in self.tensors):
            members.setdefault(self.groups.get(name, name), []).append(name)
        return members


def layer_name(node: ir.Node) -> str:
    return node.name or f"{node.op_type}_{node.outputs[0].name}"


def _is_constant(value: ir.Value | None) -> bool:
    return value is not None and value.const_value is not None


def _is_static(value: ir.Value) -> bool:
    """An initializer or a Constant node's output."""
    producer = value.producer()
    return _is_constant(value) or (producer is not None and producer.op_type == "Constant")


def _is_float(value: ir.Value | None) -> bool:
    return value is not None and value.dtype in (ir.DataType.FLOAT, None)


def _weight_axis(node: ir.Node) -> int:
    if node.op_type == "Conv":
        return 0  # [out, in/groups, kh, kw]
    if node.op_type == "ConvTranspose":
        return 1  # [in, out/groups, kh, kw]; per-channel needs groups == 1 (checked in find_layers)
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
    if user.op_type not in FUSED_ACTIVATIONS or users[0].idx != 0:
        return None
    if user.op_type == "Clip" and any(v is not None and not _is_static(v) for v in user.inputs[1:]):
        return None  # bounds known only at run time: the int8 clamp cannot do them
    return user


def find_layers(graph: ir.Graph) -> list[Layer]:
    """Every node that can be computed in int8, with its unit's pieces."""
    layers = []
    for node in graph:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or not node.outputs or not _is_float(node.outputs[0]):
            continue
        if op in COMPUTE:
            data, weight = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
            if data is None or _is_constant(data) or weight is None:
                continue
            if op == "Gemm" and node.attributes.get_int("transA", 0):
                continue
            if op == "ConvTranspose" and node.attributes.get_int("group", 1) != 1:
                continue
            fused = _fused_activation(node, graph)
            output = fused.outputs[0] if fused else node.outputs[0]
            bias = node.inputs[2] if len(node.inputs) > 2 and _is_constant(node.inputs[2]) else None
            if bias is not None and len(bias.shape) != 1:
                bias = None  # a 2-D Gemm C stays float
            if _is_constant(weight):
                layers.append(Layer(node, [data], output, weight, _weight_axis(node), bias, fused))
            elif op == "MatMul":  # activation × activation (attention scores)
                layers.append(Layer(node, [data, weight], output, fused=fused))
        elif op == "Add" and len(node.inputs) == 2 and not any(_is_constant(v) for v in node.inputs):
            layers.append(Layer(node, list(node.inputs), node.outputs[0]))
        elif op in POOLS:
            layers.append(Layer(node, [node.inputs[0]], node.outputs[0]))
    return layers


class _Groups:
    """Union-find over tensor names."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        while self.parent.get(name, name) != name:
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def plan_quantization(graph: ir.Graph, exclude: set[str] = frozenset()) -> Plan:
    """The plan for all layers except those named in `exclude` (kept float: mixed precision)."""
    layers = [layer for layer in find_layers(graph) if layer_name(layer.node) not in exclude]
    chosen: dict[str, ir.Value] = {}
    for layer in layers:
        for value in [*layer.inputs, layer.output]:
            if _is_float(value):
                chosen[value.name] = value
    groups = _Groups()
    for node in graph:  # graph order: a chain MaxPool → Reshape → Gemm propagates forward
        if node.op_type not in SAME_SCALE or not node.outputs:
            continue
        data = [node.inputs[0]] if node.op_type != "Concat" else [v for v in node.inputs if v is not None]
        if not any(v.name in chosen for v in data) or not _is_float(node.outputs[0]):
            continue
        for value in [*data, node.outputs[0]]:
            if _is_constant(value):
                continue
            chosen[value.name] = value
            groups.union(data[0].name, value.name)
    order = {v.name: i for i, v in enumerate(_values_in_order(graph))}
    tensors = sorted(chosen.values(), key=lambda v: order.get(v.name, -1))
    return Plan(layers, tensors, {t.name: groups.find(t.name) for t in tensors})


def _values_in_order(graph: ir.Graph) -> list[ir.Value]:
    values = list(graph.inputs)
    for node in graph:
        values.extend(node.outputs)
    return values

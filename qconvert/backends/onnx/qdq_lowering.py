"""The IR's QDQ written in the form onnxruntime's CPU provider fuses into integer kernels.

Each rewrite keeps the quantized function exactly (the same integers reach every integer kernel):

1. Activations as uint8, zero point + 128. The x86 kernels take unsigned activations; onnxruntime converts
   an int8 QuantizeLinear→DequantizeLinear pair itself, but not one whose tensor feeds two layers (a
   UNet's skip connection), and then the Concat and MaxPool on it see mixed types and stay float.
2. A Relu fused into a layer whose output zero point is above the minimum (the output shares a scale with
   a Concat whose other input goes negative): QLinearConv has no clamp, so onnxruntime would run the Conv
   in float. Instead the integer output goes through Max(q, zero point), the Relu on integers.
3. DepthToSpace, which has no integer kernel in onnxruntime, as Transposes and Reshapes, each with the
   same QDQ: onnxruntime moves those int8 tensors without dequantizing them.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

LAYERS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def lower_for_onnxruntime(model: ir.Model) -> ir.Model:
    """A copy of the QDQ IR in onnxruntime's preferred form; `model` is left as it is."""
    model = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    graph = model.graph
    _activations_to_uint8(graph)
    for q in [n for n in graph if n.op_type == "QuantizeLinear"]:
        _unclamped_relu(graph, q)
    for node in [n for n in graph if n.op_type == "DepthToSpace"]:
        _depth_to_space(graph, node)
    graph.sort()
    return model


def _constant(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    while name in graph.initializers:
        name += "_"
    value = ir.Value(name=name, const_value=ir.tensor(array, name=name),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)), shape=ir.Shape(array.shape))
    graph.register_initializer(value)
    return value


# -- 1. uint8 activations --------------------------------------------------------------------------
def _activations_to_uint8(graph: ir.Graph) -> None:
    """Every QuantizeLinear, and every DequantizeLinear of a run-time tensor, with an int8 zero point
    gets a uint8 one (weights stay int8: the kernels take signed weights)."""
    converted: dict[str, ir.Value] = {}
    for node in list(graph):
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.inputs) < 3:
            continue
        if node.op_type == "DequantizeLinear" and _constant(node.inputs[0]) is not None:
            continue
        zero = node.inputs[2]
        array = _constant(zero)
        if array is None or array.dtype != np.int8:
            continue
        if zero.name not in converted:
            shifted = (array.astype(np.int16) + 128).astype(np.uint8)
            converted[zero.name] = _initializer(graph, f"{zero.name}_uint8", shifted)
        node.replace_input_with(2, converted[zero.name])
        if node.op_type == "QuantizeLinear":
            node.outputs[0].type = ir.TensorType(ir.DataType.UINT8)
    for name in converted:
        if name in graph.initializers and not list(graph.initializers[name].uses()):
            graph.initializers.pop(name)


# -- 2. Relu with a zero point above the minimum ---------------------------------------------------
def _unclamped_relu(graph: ir.Graph, q: ir.Node) -> None:
    """layer → Relu → Q(s, z) becomes layer → Q(s, z) → Max(·, z): the same integers, as
    round(relu(x)/s) + z = max(round(x/s) + z, z), with the layer fused into its integer kernel."""
    relu = q.inputs[0].producer()
    if relu is None or relu.op_type != "Relu" or len(list(relu.outputs[0].uses())) != 1:
        return
    layer = relu.inputs[0].producer()
    if layer is None or layer.op_type not in LAYERS or relu.outputs[0].is_graph_output():
        return
    zero = _constant(q.inputs[2])
    if zero is None or zero.size != 1 or zero.dtype != np.uint8 or int(zero) == 0:
        return
    quantized = q.outputs[0]
    floor = ir.node("Max", [quantized, q.inputs[2]], name=f"{q.name}_relu")
    floor.outputs[0].name = f"{quantized.name}_relu"
    floor.outputs[0].type, floor.outputs[0].shape = quantized.type, quantized.shape
    quantized.replace_all_uses_with(floor.outputs[0])
    floor.replace_input_with(0, quantized)
    q.replace_input_with(0, relu.inputs[0])
    graph.insert_after(q, floor)
    graph.remove(relu, safe=True)


# -- 3. DepthToSpace -------------------------------------------------------------------------------
def _depth_to_space(graph: ir.Graph, node: ir.Node) -> None:
    """DQ → DepthToSpace(DCR) → Q as channels-last moves of int8 data, each step between the same Q/DQ:
    Transpose to NHWC, split the channels into (i, j, C), swap W and i, merge, Transpose back. The two
    layout Transposes cancel against the ones onnxruntime puts around its channels-last integer kernels,
    and the middle one moves whole runs of C bytes (a channels-first 6-D transpose moves single bytes)."""
    dq = node.inputs[0].producer()
    users = list(node.outputs[0].uses())
    if dq is None or dq.op_type != "DequantizeLinear" or len(users) != 1 or users[0].node.op_type != "QuantizeLinear":
        return
    q = users[0].node
    shape = node.inputs[0].shape
    if node.attributes.get_string("mode", "DCR") != "DCR":
        return
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape.dims[1:]):
        return
    block = node.attributes.get_int("blocksize")
    _, channels, height, width = shape.dims
    depth = channels // (block * block)
    name = node.name or node.outputs[0].name

    def shape_of(label: str, dims: list[int]) -> ir.Value:
        return _initializer(graph, f"{name}_{label}", np.array(dims, dtype=np.int64))

    steps = [
        ("Transpose", [], {"perm": [0, 2, 3, 1]}),
        ("Reshape", [shape_of("split", [0, height, width, block, block, depth])], {}),
        ("Transpose", [], {"perm": [0, 1, 3, 2, 4, 5]}),
        ("Reshape", [shape_of("merge", [0, height * block, width * block, depth])], {}),
        ("Transpose", [], {"perm": [0, 3, 1, 2]}),
    ]
    scale, zero = q.inputs[1], q.inputs[2]
    x, new = dq.outputs[0], []
    for index, (op, extra, attributes) in enumerate(steps):
        step = ir.node(op, [x, *extra], attributes or None, name=f"{name}_{op.lower()}{index}")
        step.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        new.append(step)
        x = step.outputs[0]
        if index == len(steps) - 1:
            break
        requantize = ir.node("QuantizeLinear", [x, scale, zero], name=f"{step.name}_q")
        requantize.outputs[0].type = zero.type
        dequantize = ir.node("DequantizeLinear", [requantize.outputs[0], scale, zero], name=f"{step.name}_dq")
        dequantize.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        new += [requantize, dequantize]
        x = dequantize.outputs[0]
    graph.insert_after(node, new)
    x.shape = node.outputs[0].shape
    node.outputs[0].replace_all_uses_with(x)
    graph.remove(node, safe=True)

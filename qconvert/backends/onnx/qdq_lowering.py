"""The IR's QDQ written in the form onnxruntime's CPU provider fuses into integer kernels.

Each rewrite keeps the quantized function exactly (the same integers reach every integer kernel):

1. Activations as uint8, zero point + 128. The x86 kernels take unsigned activations; onnxruntime converts
   an int8 QuantizeLinear→DequantizeLinear pair itself, but not one whose tensor feeds two layers (a
   UNet's skip connection), and then the Concat and MaxPool on it see mixed types and stay float.
   A constant operand of Add/Mul (an int8 DequantizeLinear of a constant, qconvert.quant.plan) becomes
   uint8 the same way: QLinearAdd/QLinearMul take both inputs in the output's type.
2. A Relu or Clip fused into a layer whose output's integer range does not end at its bounds (a Relu
   output sharing a scale with a Concat whose other input goes negative): QLinearConv has no clamp, so
   onnxruntime would run the Conv in float. Instead the integer output goes through Max/Min at the
   bounds' integers.
3. DepthToSpace, which has no integer kernel in onnxruntime, as Transposes and Reshapes, each with the
   same QDQ: onnxruntime moves those int8 tensors without dequantizing them.
4. A Conv whose input channels are not a multiple of 4 (an RGB image's first layer) gets one more input
   channel, holding the zero point (real 0), with zero weights: onnxruntime's x86 indirect symmetric
   int8 conv kernel needs the multiple, and without it the layer falls back to im2col + GEMM, 3× slower
   (VGG's first conv: 0.98 → 0.31 ms at batch 32).
5. A spatial ReduceMean (torchvision's adaptive_avg_pool2d, Keras GlobalAveragePooling2D) as
   GlobalAveragePool, the same mean, which onnxruntime runs as QLinearGlobalAveragePool (it has no
   integer ReduceMean); with keepdims=0 a Squeeze follows, between the same Q/DQ.
6. A Conv (not depthwise), Gemm or MatMul whose uint8 input takes negative values (zero point above 0),
   or is the graph's input, reads its input interleaved with zero-point channels, and its weights with
   a zero column after every column, so that x86's int16 pair sums cannot saturate on CPUs without VNNI
   (qconvert.backends.int16_pairs: the rule and the arithmetic torch-int8 shares). The interleaving
   is a 1x1 integer layer of its own; the layer after it does twice its multiplies.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.backends.int16_pairs import interleave_weight, interleaved_width, signed_or_input, spread
from qconvert.ir.values import add_initializer, constant_array, copy_model
from qconvert.quant.plan import BINARY_OPS, FUSING_OPS, is_spatial_mean

LAYERS = FUSING_OPS  # the ops a Relu/Clip fuses into (the plan's rule)


def lower_for_onnxruntime(model: ir.Model) -> ir.Model:
    """A copy of the QDQ IR in onnxruntime's preferred form; `model` is left as it is."""
    model = copy_model(model)
    graph = model.graph
    _activations_to_uint8(graph)
    for q in [n for n in graph if n.op_type == "QuantizeLinear"]:
        _integer_clamp(graph, q)
    for node in [n for n in graph if n.op_type == "DepthToSpace"]:
        _depth_to_space(graph, node)
    interleaved: dict[tuple[str, bool], ir.Value] = {}  # one interleaving per tensor and layout
    for node in [n for n in graph if n.op_type in PAIRING_LAYERS]:
        _interleave_signed_input(graph, node, interleaved)
    for node in [n for n in graph if n.op_type == "Conv"]:
        _pad_input_channels(graph, node)
    for node in [n for n in graph if n.op_type == "ReduceMean"]:
        _spatial_mean_as_pool(graph, node)
    graph.sort()
    return model


# -- 1. uint8 activations --------------------------------------------------------------------------
def _activations_to_uint8(graph: ir.Graph) -> None:
    """Every QuantizeLinear, and every DequantizeLinear of a run-time tensor, with an int8 zero point
    gets a uint8 one (weights stay int8: the kernels take signed weights)."""
    converted: dict[str, ir.Value] = {}
    for node in list(graph):
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.inputs) < 3:
            continue
        if node.op_type == "DequantizeLinear" and constant_array(node.inputs[0]) is not None:
            if not _binary_operand(node):
                continue  # a weight: the kernels take signed weights
            data = constant_array(node.inputs[0])
            shifted = add_initializer(graph, f"{node.inputs[0].name}_uint8",
                                      (data.astype(np.int16) + 128).astype(np.uint8))
            old = node.inputs[0]
            node.replace_input_with(0, shifted)
            if old.name in graph.initializers and not list(old.uses()):
                graph.initializers.pop(old.name)
        zero = node.inputs[2]
        array = constant_array(zero)
        if array is None or array.dtype != np.int8:
            continue
        if zero.name not in converted:
            shifted = (array.astype(np.int16) + 128).astype(np.uint8)
            converted[zero.name] = add_initializer(graph, f"{zero.name}_uint8", shifted)
        node.replace_input_with(2, converted[zero.name])
        if node.op_type == "QuantizeLinear":
            node.outputs[0].type = ir.TensorType(ir.DataType.UINT8)
    for name in converted:
        if name in graph.initializers and not list(graph.initializers[name].uses()):
            graph.initializers.pop(name)


def _binary_operand(dq: ir.Node) -> bool:
    """An int8 DequantizeLinear of a constant that only Add/Mul read."""
    uses = list(dq.outputs[0].uses())
    data = constant_array(dq.inputs[0])
    return (bool(uses) and data is not None and data.dtype == np.int8
            and all(use.node.op_type in BINARY_OPS for use in uses))


# -- 2. Relu/Clip that the output's integer range does not already do -------------------------------
def _activation_bounds(node: ir.Node) -> tuple[float, float] | None:
    """The float interval a fused Relu or Clip keeps, or None when its bounds are not constants."""
    if node.op_type == "Relu":
        return 0.0, float("inf")
    if node.op_type != "Clip":
        return None
    if "min" in node.attributes or "max" in node.attributes:  # opset < 11
        return node.attributes.get_float("min", float("-inf")), node.attributes.get_float("max", float("inf"))
    bounds = []
    for index, default in ((1, float("-inf")), (2, float("inf"))):
        value = node.inputs[index] if len(node.inputs) > index else None
        if value is None:
            bounds.append(default)
            continue
        array = constant_array(value)
        if array is None:
            return None
        bounds.append(float(array))
    return bounds[0], bounds[1]


def _integer_clamp(graph: ir.Graph, q: ir.Node) -> None:
    """layer → Relu/Clip → Q(s, z) becomes layer → Q(s, z) → Max/Min on the integers: the same values,
    as rounding is monotonic (round(clip(x, a, b)/s) + z = clip(round(x/s) + z, q(a), q(b))), with the
    layer fused into its integer kernel. onnxruntime drops a Relu/Clip itself only when the output's
    integer range already ends at the bounds; a skip connection sharing a Concat's scale does not."""
    activation = q.inputs[0].producer()
    if activation is None or len(list(activation.outputs[0].uses())) != 1 or activation.outputs[0].is_graph_output():
        return
    layer = activation.inputs[0].producer()
    bounds = _activation_bounds(activation)
    if layer is None or layer.op_type not in LAYERS or bounds is None:
        return
    scale, zero = constant_array(q.inputs[1]), constant_array(q.inputs[2])
    if scale is None or zero is None or scale.size != 1 or zero.dtype != np.uint8:
        return
    integer = [int(zero) + float(np.rint(np.float32(b) / np.float32(scale))) if np.isfinite(b) else b for b in bounds]
    low = int(integer[0]) if integer[0] > 0 else None
    high = int(integer[1]) if integer[1] < 255 else None
    if low is None and high is None:
        return  # the uint8 range does the clamp: onnxruntime fuses the activation itself
    x = q.outputs[0]
    users = list(x.uses())
    new = []
    for op, bound in (("Max", low), ("Min", high)):
        if bound is None:
            continue
        limit = add_initializer(graph, f"{q.name}_{op.lower()}", np.array(bound, dtype=np.uint8))
        step = ir.node(op, [x, limit], name=f"{q.name}_{activation.op_type.lower()}_{op.lower()}")
        step.outputs[0].name = f"{q.outputs[0].name}_{op.lower()}"
        step.outputs[0].type, step.outputs[0].shape = x.type, x.shape
        new.append(step)
        x = step.outputs[0]
    for use in users:
        use.node.replace_input_with(use.idx, x)
    q.replace_input_with(0, activation.inputs[0])
    graph.insert_after(q, new)
    graph.remove(activation, safe=True)


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
        return add_initializer(graph, f"{name}_{label}", np.array(dims, dtype=np.int64))

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


# -- 4. Input channels padded to a multiple of 4 -----------------------------------------------------
# What onnxruntime's x86 symmetric conv kernel (MlasConvSymPackWSize) accepts: input channels a multiple
# of 4, output channels a multiple of 8 and at least 16, int8 weights with zero points 0, one group.
CHANNEL_ALIGNMENT = 4
MIN_OUTPUT_CHANNELS = 16
OUTPUT_CHANNEL_ALIGNMENT = 8


def _pad_input_channels(graph: ir.Graph, conv: ir.Node) -> None:
    """DQ(x) → Conv with C % 4 != 0 input channels becomes Pad(x, one channel of the zero point) → DQ →
    Conv with a zero weight column: every sum gets (z − z)·w + 0·x = 0 more, so the integers are the same."""
    x_dq, w_dq = (value.producer() if value is not None else None for value in conv.inputs[:2])
    if conv.attributes.get_int("group", 1) != 1 or x_dq is None or w_dq is None:
        return
    if x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear" or len(x_dq.inputs) < 3:
        return
    weights = constant_array(w_dq.inputs[0])
    weight_zero = constant_array(w_dq.inputs[2]) if len(w_dq.inputs) > 2 else None
    x_zero = constant_array(x_dq.inputs[2])
    if weights is None or weights.dtype != np.int8 or (weight_zero is not None and weight_zero.any()):
        return
    if x_zero is None or x_zero.size != 1 or constant_array(x_dq.inputs[0]) is not None:
        return
    outputs, channels = weights.shape[:2]
    if channels % CHANNEL_ALIGNMENT == 0 or outputs < MIN_OUTPUT_CHANNELS or outputs % OUTPUT_CHANNEL_ALIGNMENT:
        return
    extra = -channels % CHANNEL_ALIGNMENT
    name = conv.name or conv.outputs[0].name
    pads = np.zeros(2 * weights.ndim, dtype=np.int64)
    pads[weights.ndim + 1] = extra  # the end of the channel axis
    x = x_dq.inputs[0]
    pad = ir.node("Pad", [x, add_initializer(graph, f"{name}_channel_pads", pads), x_dq.inputs[2]],
                  name=f"{name}_channel_pad")
    pad.outputs[0].name = f"{x.name}_channel_padded"
    pad.outputs[0].type = x.type
    if x.shape is not None and len(x.shape) > 1 and isinstance(x.shape[1], int):
        pad.outputs[0].shape = ir.Shape([*x.shape.dims[:1], x.shape[1] + extra, *x.shape.dims[2:]])
    x_padded = ir.node("DequantizeLinear", [pad.outputs[0], *x_dq.inputs[1:]], name=f"{name}_input_dq")
    padded_weights = np.concatenate([weights, np.zeros((outputs, extra, *weights.shape[2:]), np.int8)], axis=1)
    x_padded.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    _replace_layer_inputs(graph, conv, [pad, x_padded], x_dq, w_dq, padded_weights, "channel_padded")


# -- 5. Spatial ReduceMean as GlobalAveragePool --------------------------------------------------------
def _spatial_mean_as_pool(graph: ir.Graph, node: ir.Node) -> None:
    """DQ → ReduceMean(axes H, W) → Q becomes DQ → GlobalAveragePool → Q [→ DQ → Squeeze → Q]."""
    x = node.inputs[0]
    dq = x.producer() if x is not None else None
    users = list(node.outputs[0].uses())
    if dq is None or dq.op_type != "DequantizeLinear" or len(users) != 1 or users[0].node.op_type != "QuantizeLinear":
        return
    if node.outputs[0].is_graph_output() or not is_spatial_mean(node):
        return
    q = users[0].node
    name = node.name or node.outputs[0].name
    pool = ir.node("GlobalAveragePool", [x], name=f"{name}_global_pool")
    pool.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    pool.outputs[0].shape = ir.Shape([*x.shape.dims[:2], 1, 1])
    new, result = [pool], pool.outputs[0]
    if not node.attributes.get_int("keepdims", 1):
        scale, zero = q.inputs[1], q.inputs[2]
        requantize = ir.node("QuantizeLinear", [result, scale, zero], name=f"{name}_pool_q")
        requantize.outputs[0].type = zero.type
        dequantize = ir.node("DequantizeLinear", [requantize.outputs[0], scale, zero], name=f"{name}_pool_dq")
        dequantize.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        squeeze = ir.node("Squeeze", [dequantize.outputs[0], add_initializer(graph, f"{name}_axes",
                                                                                np.array([2, 3], np.int64))],
                          name=f"{name}_squeeze")
        squeeze.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
        new += [requantize, dequantize, squeeze]
        result = squeeze.outputs[0]
    graph.insert_after(node, new)
    result.shape = node.outputs[0].shape
    node.outputs[0].replace_all_uses_with(result)
    graph.remove(node, safe=True)


# -- 6. Signed inputs interleaved with zero-point channels ---------------------------------------------
PAIRING_LAYERS = ("Conv", "Gemm", "MatMul")  # x86 u8×s8 kernels that sum product pairs in int16


def _interleave_signed_input(graph: ir.Graph, node: ir.Node, done: dict[tuple[str, bool], ir.Value]) -> None:
    """DQ(x) → layer(W) with a uint8 x whose zero point is above 0 becomes interleave(x) → DQ →
    layer(W with a zero input column after each): channel c moves to 2c, channel 2c+1 holds the zero
    point (real 0) and meets a zero weight, so each int16 pair sum holds one product (255·127 fits)."""
    x_dq, w_dq = (value.producer() if value is not None else None for value in node.inputs[:2])
    if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
        return
    if len(x_dq.inputs) < 3 or constant_array(x_dq.inputs[0]) is not None:
        return
    zero, weights = constant_array(x_dq.inputs[2]), constant_array(w_dq.inputs[0])
    x = x_dq.inputs[0]
    if zero is None or zero.dtype != np.uint8 or zero.size != 1 or not signed_or_input(x, int(zero)):
        return
    weight_zero = constant_array(w_dq.inputs[2]) if len(w_dq.inputs) > 2 else None
    if weights is None or weights.dtype != np.int8 or (weight_zero is not None and weight_zero.any()):
        return  # a zero column is a zero weight only with zero points 0
    if x.shape is None or (node.op_type == "Conv" and len(x.shape) < 3):
        return
    axis = _input_channel_axis(node, weights)
    if axis is None:
        return
    name = node.name or node.outputs[0].name
    key = (x.name, node.op_type == "Conv")
    steps = []
    if key not in done:
        steps = _interleave_steps(graph, name, x, x_dq.inputs[2], x_dq.inputs[1], weights.shape[axis], key[1])
        done[key] = steps[-1].outputs[0]
    wide = done[key].shape[1 if node.op_type == "Conv" else -1]
    interleaved = ir.node("DequantizeLinear", [done[key], *x_dq.inputs[1:]], name=f"{name}_input_dq")
    interleaved.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    _replace_layer_inputs(graph, node, [*steps, interleaved], x_dq, w_dq, spread(weights, axis, wide), "interleaved")


def _replace_layer_inputs(graph: ir.Graph, layer: ir.Node, input_steps: list[ir.Node], x_dq: ir.Node,
                          w_dq: ir.Node, weights: np.ndarray, label: str) -> None:
    """The layer reads the last of `input_steps` (inserted before it) and `weights` with w_dq's scales;
    its old DequantizeLinears and weight go where nothing else reads them."""
    name = layer.name or layer.outputs[0].name
    w_new = ir.node("DequantizeLinear",
                    [add_initializer(graph, f"{w_dq.inputs[0].name}_{label}", weights), *w_dq.inputs[1:]],
                    {"axis": w_dq.attributes.get_int("axis", 1)} if "axis" in w_dq.attributes else None,
                    name=f"{name}_weight_dq")
    w_new.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    graph.insert_before(layer, [*input_steps, w_new])
    layer.replace_input_with(0, input_steps[-1].outputs[0])
    layer.replace_input_with(1, w_new.outputs[0])
    old_weights = w_dq.inputs[0]
    for old in (x_dq, w_dq):
        if not list(old.outputs[0].uses()) and not old.outputs[0].is_graph_output():
            graph.remove(old, safe=True)
    if old_weights.name in graph.initializers and not list(old_weights.uses()):
        graph.initializers.pop(old_weights.name)


def _input_channel_axis(node: ir.Node, weights: np.ndarray) -> int | None:
    """The weight axis that meets the input's channels (Conv) or features (Gemm/MatMul), where the
    layer is one whose kernel pairs them; None otherwise."""
    if node.op_type == "Conv":
        grouped = node.attributes.get_int("group", 1) != 1
        return None if grouped or weights.ndim < 3 else 1
    if node.op_type == "Gemm":
        if node.attributes.get_int("transA", 0):
            return None
        return 1 if node.attributes.get_int("transB", 0) else 0
    return 0 if weights.ndim == 2 else None  # MatMul with a [K, N] weight


def _interleave_steps(graph: ir.Graph, name: str, x: ir.Value, zero: ir.Value, scale: ir.Value, channels: int,
                      channels_first: bool) -> list[ir.Node]:
    """uint8 x → the same with a zero-point channel after each channel, as an integer layer of its own:
    a 1x1 Conv (channels first) or a MatMul (features last) whose int8 weight is 1 from channel c to
    2c and 0 elsewhere, with the input's scale and zero point on both sides (requantizing by exactly
    1.0 returns each code; its own pairs hold one product each). It runs in onnxruntime's integer
    kernels, channels-last like the layer after it (a Pad or Concat on the innermost axis runs element
    by element there)."""
    rank = len(x.shape)
    # Channels first, the count is rounded up to rewrite 4's multiple: the extra channels hold the zero
    # point too, so no Pad follows (on the innermost axis, onnxruntime pads element by element).
    wide = interleaved_width(channels, CHANNEL_ALIGNMENT if channels_first else 1)
    matrix = interleave_weight(channels, wide)
    if channels_first:
        matrix, axis = matrix.reshape(wide, channels, *([1] * (rank - 2))), 0
    else:
        matrix, axis = np.ascontiguousarray(matrix.T), 1  # [K, 2K]
    weight = add_initializer(graph, f"{name}_interleave_weight", matrix)
    weight_scale = add_initializer(graph, f"{name}_interleave_weight_scale", np.ones(wide, np.float32))
    weight_zero = add_initializer(graph, f"{name}_interleave_weight_zero_point", np.zeros(wide, np.int8))
    steps = [
        ir.node("DequantizeLinear", [x, scale, zero], name=f"{name}_interleave_input_dq"),
        ir.node("DequantizeLinear", [weight, weight_scale, weight_zero], {"axis": axis}, name=f"{name}_interleave_weight_dq"),
    ]
    layer = ir.node("Conv" if channels_first else "MatMul", [steps[0].outputs[0], steps[1].outputs[0]],
                    name=f"{name}_interleave")
    requantize = ir.node("QuantizeLinear", [layer.outputs[0], scale, zero], name=f"{name}_interleave_q")
    steps += [layer, requantize]
    for step in steps[:3]:
        step.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    requantize.outputs[0].type = x.type
    dims = list(x.shape.dims)
    dims[1 if channels_first else rank - 1] = wide
    layer.outputs[0].shape = requantize.outputs[0].shape = ir.Shape(dims)
    return steps

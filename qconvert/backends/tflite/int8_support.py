"""Which quantized IR ops TFLite runs on integer kernels, and the emit-time check that refuses the rest.

A full-integer file needs every op that computes on activations to sit between the IR's QDQ (its float
inputs dequantized, its output quantized, or the output of the Relu/Clip fused into it) and to have an
integer kernel. The converter alone would leave an op it cannot quantize in float, or requantize around
it, and say so only in TFLite's op names; this check names the IR node before converting. What it lets
through is checked again on the file (qconvert.backends.tflite.quantized).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.errors import UnsupportedOpError
from qconvert.ir.values import constant_array
from qconvert.quant.plan import FUSED_ACTIVATIONS, FUSING_OPS

# IR ops whose emission, with quantized activations, is integer TFLite kernels only (measured with the
# converter and LiteRT: tests/backends/tflite_int8/test_ops.py). The kernel each becomes, for messages.
INTEGER_KERNELS = {
    "Conv": "CONV_2D/DEPTHWISE_CONV_2D", "ConvTranspose": "TRANSPOSE_CONV", "Gemm": "FULLY_CONNECTED",
    "MatMul": "FULLY_CONNECTED/BATCH_MATMUL", "Add": "ADD", "Sub": "SUB", "Mul": "MUL",
    "Relu": "RELU", "Clip": "RELU6/RELU_N1_TO_1", "LeakyRelu": "LEAKY_RELU", "PRelu": "PRELU",
    "HardSwish": "HARD_SWISH", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "Softmax": "SOFTMAX",
    "MaxPool": "MAX_POOL_2D", "AveragePool": "AVERAGE_POOL_2D", "GlobalAveragePool": "MEAN",
    "GlobalMaxPool": "REDUCE_MAX", "ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX",
    "Pad": "PAD/MIRROR_PAD", "Split": "SPLIT", "Slice": "STRIDED_SLICE", "Concat": "CONCATENATION",
    "Reshape": "RESHAPE", "Transpose": "TRANSPOSE", "Flatten": "RESHAPE", "Squeeze": "RESHAPE",
    "Unsqueeze": "RESHAPE", "DepthToSpace": "DEPTH_TO_SPACE", "SpaceToDepth": "SPACE_TO_DEPTH",
    "Resize": "RESIZE_BILINEAR/RESIZE_NEAREST_NEIGHBOR", "Gather": "GATHER", "Tile": "TILE",
    "Expand": "BROADCAST_TO", "Max": "MAXIMUM", "Min": "MINIMUM", "Identity": "-",
}
# The clamps TFLite's integer kernels fuse or run: RELU, RELU6, RELU_N1_TO_1.
INTEGER_CLAMPS = {(0.0, None), (0.0, 6.0), (-1.0, 1.0)}


def check_integer_ops(model: ir.Model, target: str, float_layers: list[str] | tuple = ()) -> None:
    """Raise UnsupportedOpError for the first node that the full-integer file could not run on integers.

    ``float_layers``: the layers mixed precision kept float, so float regions are expected; only the
    quantized ops are checked then, and those layers must not be quantized (the converter quantizes
    any op it finds between fake-quant ops)."""
    static = _static_values(model.graph)
    kept = set(float_layers)
    for node in model.graph:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or node.domain not in ("", "ai.onnx"):
            continue
        outputs = [v for v in node.outputs if v is not None and v.dtype == ir.DataType.FLOAT]
        if not outputs or all(v.name in static for v in outputs):
            continue  # integer results (shapes, indices) or folded at emit time
        if _fused_into_producer(node):
            continue  # checked with the layer it belongs to
        if not all(_quantized_output(v) for v in outputs):
            if kept:
                continue
            raise UnsupportedOpError(node.op_type, node.name or "", target,
                                     "the QDQ IR leaves its output float; a full-integer file needs every op quantized")
        float_input = next((value for value in node.inputs
                            if value is not None and value.dtype == ir.DataType.FLOAT and value.name not in static
                            and not _dequantized(value)), None)
        if float_input is not None:
            if kept:
                continue  # the border of a float region: computed in float, its output quantized after it
            raise UnsupportedOpError(node.op_type, node.name or "", target,
                                     f"its input {float_input.name} is not quantized by the QDQ IR")
        reason = refusal(node)
        if node.name in kept:
            reason = ("kept float by mixed precision, but the QDQ IR quantizes its input and output: the TFLite "
                      "converter would compute it in int8")
        if reason:
            raise UnsupportedOpError(node.op_type, node.name or "", target, reason)


def refusal(node: ir.Node) -> str | None:
    """Why TFLite cannot run this quantized node on integer kernels, or None."""
    op = node.op_type
    if op not in INTEGER_KERNELS:
        return "TFLite has no integer kernel for it; the int8 file would compute it in float"
    activation = _fused_activation(node)
    if activation is not None and activation.op_type == "Clip":
        bounds = _clip_bounds(activation)
        if bounds not in INTEGER_CLAMPS:
            return f"a fused Clip to {bounds}: TFLite's integer clamps are [0, inf), [0, 6] and [-1, 1]"
    if op == "Clip" and not _fused_into_producer(node) and _clip_bounds(node) not in INTEGER_CLAMPS:
        return f"Clip to {_clip_bounds(node)}: TFLite's integer clamps are [0, inf), [0, 6] and [-1, 1]"
    if op == "Resize" and node.attributes.get_string("mode", "nearest") not in ("nearest", "linear"):
        return f"{node.attributes.get_string('mode')} Resize: TFLite resizes integers only nearest or bilinear"
    if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool") and node.inputs[0].shape is not None \
            and len(node.inputs[0].shape) > 4:
        return "3-D: TFLite's 3-D kernels take no int8"
    return None


def _static_values(graph: ir.Graph) -> set[str]:
    """Values known at emit time: initializers, Constant outputs, and what only they compute."""
    static = {name for name, value in graph.initializers.items() if not value.is_graph_input()}
    for node in graph:
        inputs = [v for v in node.inputs if v is not None]
        if node.op_type == "Constant" or (inputs and all(v.name in static for v in inputs)):
            static.update(v.name for v in node.outputs if v is not None)
    return static


def _dequantized(value: ir.Value) -> bool:
    producer = value.producer()
    return producer is not None and producer.op_type == "DequantizeLinear"


def _quantized_output(value: ir.Value) -> bool:
    """Every use quantizes it, or it goes through the Relu/Clip fused into its producer first."""
    if value.is_graph_output():
        return False
    uses = list(value.uses())
    if not uses:
        return True  # nothing reads it (an unused Split output)
    if all(use.node.op_type == "QuantizeLinear" for use in uses):
        return True
    activation = _fused_activation(value.producer())
    return activation is not None and all(_quantized_output(v) for v in activation.outputs)


def _fused_activation(node: ir.Node | None) -> ir.Node | None:
    """The Relu/Clip that is the only consumer of a layer's output (the plan's fused unit), else None."""
    if node is None or node.op_type not in FUSING_OPS or not node.outputs:
        return None
    uses = list(node.outputs[0].uses())
    if len(uses) != 1 or node.outputs[0].is_graph_output():
        return None
    user = uses[0].node
    return user if user.op_type in FUSED_ACTIVATIONS and uses[0].idx == 0 else None


def _fused_into_producer(node: ir.Node) -> bool:
    producer = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
    return node.op_type in FUSED_ACTIVATIONS and _fused_activation(producer) is node


def _clip_bounds(node: ir.Node) -> tuple[float | None, float | None]:
    if node.op_type == "Relu":
        return 0.0, None
    bounds = []
    for index, name in ((1, "min"), (2, "max")):
        value = node.inputs[index] if len(node.inputs) > index else None
        array = constant_array(value) if value is not None else None
        if array is None and node.attributes.get(name) is not None:
            array = node.attributes.get_float(name)
        bounds.append(None if array is None else float(np.asarray(array).reshape(())))
    return bounds[0], bounds[1]

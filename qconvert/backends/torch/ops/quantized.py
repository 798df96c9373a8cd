"""Int8 kernels: the IR's QDQ lowered to torch's quantized ops, and dynamic int8 Linear.

This module is the one place that decides *how* PyTorch runs int8. It uses the quantized kernels and
modules directly (torch.ao.nn.quantized Conv2d/Linear with packed weights, quantized::add/mul/cat/softmax,
quantized hardswish/leaky_relu/sigmoid/tanh, pools and resizes on quantized tensors), built from the IR's
own int8 weights, int32 biases, scales and zero points; the deprecated eager/FX *workflows*
(prepare/convert, observers) are not used. PT2E (torchao) would re-derive the quantization from a float
program; here it is already decided in the IR (measured and argued in the README). *Where* QDQ goes, and
which activations a layer absorbs, is the plan's (qconvert.quant.plan); this module reads those rules.

Activations are quint8 (fbgemm/x86 and qnnpack take unsigned activations): an int8 tensor with scale s and
zero point z is the same quantized function as a uint8 one with scale s and zero point z + 128.

On x86 CPUs without VNNI, fbgemm and oneDNN add each pair of adjacent input channels' u8×s8 products in
int16, as onnxruntime does; a Conv (not depthwise) or Linear whose input takes negative values or is the
graph's input reads it interleaved with zero-point channels, the same remedy and rule as the onnx-qdq
lowering (qconvert.backends.int16_pairs).

A lowering returns True when it emitted the pattern starting at its node with int8 kernels, False to let
the float emitter run on dequantized inputs (listed in the artifact's facts as float fallbacks). A
kernel's result held at other parameters than the IR's QuantizeLinear asks for is requantized
(quantized tensor to quantized tensor, listed as "requantize" among the int8 kernels).
"""

from __future__ import annotations

from typing import List

import numpy as np
import onnx_ir as ir
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.int16_pairs import interleave_weight, interleaved_width, signed_or_input, spread
from qconvert.backends.torch.program import Quant
from qconvert.backends.torch.registry import EMITTERS, lowers
from qconvert.errors import UnsupportedOpError
from qconvert.quant.plan import FUSED_ACTIVATIONS

QMAX = 255  # quint8
# Ops whose float emitter runs unchanged on a quantized tensor (torch has quantized kernels for the data
# movement, pooling and resizing they call): the result keeps its input's scale and zero point, and the
# QuantizeLinear after it requantizes only where the IR gives that tensor other parameters. This is what
# torch can do, not a placement rule: the plan says which ops share their input's scale (SAME_SCALE).
ON_QUANTIZED = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "DepthToSpace",
                "SpaceToDepth", "Pad", "Slice", "Split", "Resize")
# torch's quantized activations whose output grid is fixed: (scale, quint8 zero point). The plan's fixed
# output scales (TFLite's) match them for Tanh; other grids are requantized from these finer ones.
KERNEL_OUTPUT = {"HardSigmoid": (1 / 256, 0), "Tanh": (1 / 128, 128)}


def _params(b, node) -> tuple[np.ndarray, np.ndarray, ir.DataType, int]:
    scale = b.const(node.inputs[1])
    zero = b.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if zero is None:
        zero = np.zeros_like(scale, dtype=np.uint8)
    return scale, zero, zero.dtype, int(b.attr(node, "axis", 1))


def _activation(b, node) -> tuple[float, int] | None:
    """Per-tensor (scale, quint8 zero point) of a Q/DQ node, or None when it is not per-tensor 8-bit."""
    scale, zero, dtype, _ = _params(b, node)
    if scale is None or scale.size != 1 or dtype not in (np.int8, np.uint8):
        return None
    shift = 128 if dtype == np.int8 else 0
    return float(scale.reshape(())), int(zero.reshape(())) + shift


def _same(held: Quant, params: tuple[float, int]) -> bool:
    return bool(np.isclose(held.scale, params[0], rtol=1e-6)) and held.zero_point == params[1]


def requantize(x: Tensor, scale: float, zero_point: int) -> Tensor:
    """The same real values on another quint8 grid (round half to even, as ONNX's QuantizeLinear)."""
    return torch.quantize_per_tensor(x.dequantize(), scale, zero_point, torch.quint8)


def _hold(b, value: ir.Value, node, out: tuple[float, int], op: str) -> None:
    b.set(value, Quant(node, *out))
    b.count(b.int8_kernels, op)


# -- Q and DQ --------------------------------------------------------------------------------------
@lowers("DequantizeLinear")
def dequantize(b, node) -> bool:
    q = b.const(node.inputs[0])
    scale, zero, _, axis = _params(b, node)
    if q is not None:  # a weight or bias: keep the integers for the kernels, floats for fallbacks
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = -1
        b.consts[node.outputs[0].name] = (
            (q.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
        b.qconsts[node.outputs[0].name] = (q, scale, zero, axis)
        return True
    held, params = b.quant(node.inputs[0]), _activation(b, node)
    if held is None or params is None:
        return False
    if not _same(held, params):  # the same integers read with other parameters
        reread = b.call(torch._make_per_tensor_quantized_tensor, b.method("int_repr", held.node), *params)
        held = Quant(reread, *params)
    b.set(node.outputs[0], held)  # free until a float op needs it
    return True


@lowers("QuantizeLinear")
def quantize(b, node) -> bool:
    params = _activation(b, node)
    if params is None:
        return False
    held = b.quant(node.inputs[0])
    if held is not None and _same(held, params):
        b.set(node.outputs[0], held)
        return True
    if held is not None:
        _hold(b, node.outputs[0], b.call(requantize, held.node, *params), params, "requantize")
        return True
    x = b.input(node, 0)
    b.set(node.outputs[0], Quant(b.call(torch.quantize_per_tensor, x, *params, torch.quint8), *params))
    return True


# -- a layer's output: fused activation, then QuantizeLinear -----------------------------------------
def _single_consumer(b, value, op_types) -> ir.Node | None:
    users = b.consumers(value)
    if len(users) == 1 and users[0].op_type in op_types and not b.is_output(value):
        return users[0]
    return None


def _bounds(b, node) -> tuple[float | None, float | None] | None:
    """(low, high) of a Relu or a Clip with bounds known at emit time; None otherwise."""
    if node.op_type == "Relu":
        return 0.0, None
    if b.opset < 11:
        return b.attr(node, "min"), b.attr(node, "max")
    arrays = [b.const(node.inputs[i]) if b.has(node, i) else None for i in (1, 2)]
    if any(b.has(node, i) and arrays[i - 1] is None for i in (1, 2)):
        return None
    return tuple(float(a.reshape(())) if a is not None else None for a in arrays)


class Chain:
    """layer -> [Relu | Clip] -> QuantizeLinear: the nodes the kernel absorbs and how its output is clamped.

    Q(clip(y, lo, hi)) = clamp(Q(y), Q(lo), Q(hi)) for the monotonic Q, so the activation is exact on the
    integers: nothing where the output grid saturates at the bounds anyway (Relu6 calibrated to [0, 6]),
    the kernel's fused Relu where the low bound is 0, else a quantized clamp after the kernel.
    """

    def __init__(self, absorbed: list[ir.Node], bounds: tuple, out: tuple[float, int]):
        self.absorbed, self.out = absorbed, out
        scale, zero_point = out
        low, high = bounds
        q_low = -1 if low is None else np.clip(np.round(low / scale) + zero_point, 0, QMAX)
        q_high = QMAX + 1 if high is None else np.clip(np.round(high / scale) + zero_point, 0, QMAX)
        self.relu = low == 0.0 and q_high >= QMAX
        saturates = q_low <= 0 and q_high >= QMAX
        self.clamp = None if saturates or self.relu else (low, high)

    def finish(self, b, result, op: str) -> bool:
        if self.clamp is not None:
            result = b.call(torch.clamp, result, *self.clamp)
        for node in self.absorbed:
            b.done.add(id(node))
        _hold(b, self.absorbed[-1].outputs[0], result, self.out, op)
        return True


def _output_chain(b, node) -> Chain | None:
    activation = _single_consumer(b, node.outputs[0], FUSED_ACTIVATIONS)
    bounds = _bounds(b, activation) if activation is not None else (None, None)
    if bounds is None:
        return None
    tail = activation.outputs[0] if activation is not None else node.outputs[0]
    q = _single_consumer(b, tail, ("QuantizeLinear",))
    if q is None or _activation(b, q) is None:
        return None
    return Chain(([activation, q] if activation is not None else [q]), bounds, _activation(b, q))


def _output(b, node) -> tuple[Quant, tuple[float, int]] | None:
    """The QuantizeLinear that is the only consumer of the node's output, and its parameters."""
    q = _single_consumer(b, node.outputs[0], ("QuantizeLinear",))
    if q is None or _activation(b, q) is None:
        return None
    return q, _activation(b, q)


def _finish_at(b, q, result, out, op: str) -> bool:
    b.done.add(id(q))
    _hold(b, q.outputs[0], result, out, op)
    return True


# -- layers ----------------------------------------------------------------------------------------
def _qweight(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> torch.Tensor:
    data = torch.from_numpy(np.ascontiguousarray(q.astype(np.int8)))
    if scale.size == 1:
        return torch._make_per_tensor_quantized_tensor(data, float(scale.reshape(())), int(zero.reshape(())))
    return torch._make_per_channel_quantized_tensor(
        data, torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zero.astype(np.int64)), axis)


def _interleaved_input(b, node, x: Quant, channels: int, conv: bool) -> tuple[Quant, int] | None:
    """x with a zero-point channel after each channel, where x86's int16 pair sums need it
    (qconvert.backends.int16_pairs), as a quantized 1x1 Conv2d (conv) or Linear at x's own scale and zero
    point, and its channel count. None: x as it is."""
    if not signed_or_input(node.inputs[0], x.zero_point):
        return None
    key = (node.inputs[0].name, conv)
    if key not in b.interleaved:
        wide = interleaved_width(channels)
        matrix = interleave_weight(channels, wide)
        module = nnq.Conv2d(channels, wide, 1) if conv else nnq.Linear(channels, wide)
        weight = matrix.reshape(wide, channels, 1, 1) if conv else matrix
        module.set_weight_bias(_qweight(weight, np.ones(wide), np.zeros(wide, np.int64), 0), None)
        module.scale, module.zero_point = x.scale, x.zero_point
        held = b.module(f"{node.name or node.op_type.lower()}_interleave", module, x.node)
        b.interleaved[key] = (Quant(held, x.scale, x.zero_point), wide)
    return b.interleaved[key]


def _module(b, node, module, x, chain: Chain, op: str | None = None) -> bool:
    module.scale, module.zero_point = chain.out
    return chain.finish(b, b.module(node.name or node.op_type.lower(), module, x), op or node.op_type)


@lowers("Conv")
def conv(b, node) -> bool:
    from qconvert.backends.torch.ops.conv import conv_geometry

    x, weight = b.quant(node.inputs[0]), b.qconsts.get(node.inputs[1].name)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    chain = _output_chain(b, node)
    if x is None or weight is None or chain is None or weight[0].ndim != 4 or weight[2].any():
        return False
    q, scale, zero, axis = weight
    if scale.size > 1 and axis != 0:  # per-channel scales along the output channels only (a per-tensor
        return False                  # weight's DequantizeLinear keeps its default axis, 1, which means nothing)
    g = conv_geometry(b, node, list(q.shape))
    interleaved = _interleaved_input(b, node, x, q.shape[1], conv=True) if g["groups"] == 1 else None
    if interleaved is not None:
        x, wide = interleaved
        q = spread(q, 1, wide)
    data = x.node
    if g["explicit"]:  # asymmetric pads: zeros (the zero point) added on the quantized tensor
        data = b.call(F.pad, data, g["explicit"])
    cls = nniq.ConvReLU2d if chain.relu else nnq.Conv2d
    out_channels, in_per_group, kh, kw = q.shape
    module = cls(in_per_group * g["groups"], out_channels, (kh, kw), stride=g["stride"], padding=g["padding"],
                 dilation=g["dilation"], groups=g["groups"])
    bias = b.const(bias_value) if bias_value is not None else None
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _module(b, node, module, data, chain)


@lowers("ConvTranspose")
def conv_transpose(b, node) -> bool:
    from qconvert.backends.torch.ops.conv import transpose_geometry

    x, weight = b.quant(node.inputs[0]), b.qconsts.get(node.inputs[1].name)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    chain = _output_chain(b, node)
    if x is None or weight is None or chain is None or weight[0].ndim != 4 or weight[2].any():
        return False
    q, scale, zero, axis = weight
    if scale.size > 1:  # fbgemm/qnnpack: "Per Channel Quantization is currently disabled for transposed conv"
        return False
    g = transpose_geometry(b, node, list(q.shape))
    if not g["direct"]:
        return False
    if chain.relu:  # no fused ConvTranspose+ReLU kernel: the clamp does the Relu, exactly
        chain.relu, chain.clamp = False, (0.0, None)
    in_channels, out_per_group, kh, kw = q.shape
    module = nnq.ConvTranspose2d(in_channels, out_per_group * g["groups"], (kh, kw), stride=g["stride"],
                                 padding=g["padding"], output_padding=g["output_padding"], groups=g["groups"],
                                 dilation=g["dilation"])
    bias = b.const(bias_value) if bias_value is not None else None
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _module(b, node, module, x.node, chain)


@lowers("Gemm", "MatMul")
def linear(b, node) -> bool:
    x, weight = b.quant(node.inputs[0]), b.qconsts.get(node.inputs[1].name)
    chain = _output_chain(b, node)
    if x is None or weight is None or chain is None or weight[0].ndim != 2 or weight[2].any():
        return False
    q, scale, zero, axis = weight
    transposed = node.op_type == "Gemm" and int(b.attr(node, "transB", 0))
    if node.op_type == "Gemm" and (int(b.attr(node, "transA", 0)) or float(b.attr(node, "alpha", 1.0)) != 1.0
                                   or float(b.attr(node, "beta", 1.0)) != 1.0):
        return False
    if not transposed:  # (K, N) -> (N, K); per-channel axis 1 becomes 0
        q, axis = q.T, 1 - axis
    if scale.size > 1 and axis != 0:
        return False
    bias_value = node.inputs[2] if node.op_type == "Gemm" and len(node.inputs) > 2 else None
    bias = b.const(bias_value) if bias_value is not None else None
    if bias is not None and bias.shape != (q.shape[0],):
        return False
    interleaved = _interleaved_input(b, node, x, q.shape[1], conv=False)
    if interleaved is not None:
        x, wide = interleaved
        q = spread(q, 1, wide)
    module = (nniq.LinearReLU if chain.relu else nnq.Linear)(q.shape[1], q.shape[0])
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _module(b, node, module, x.node, chain)


# -- elementwise on two activations, or an activation and a quantized constant ---------------------
def _quantized_constant(b, value) -> Quant | None:
    """A per-tensor int8 constant (the plan's HardSwish x + 3, a bias Add) as a quint8 tensor buffer."""
    held = b.qconsts.get(value.name)
    if held is None or held[1].size != 1:
        return None
    q, scale, zero, _ = held
    shift = 128 if q.dtype == np.int8 else 0
    data = torch.from_numpy(np.asarray(q.astype(np.int16) + shift).astype(np.uint8))
    zero_point = int(zero.reshape(())) + shift
    tensor = torch._make_per_tensor_quantized_tensor(data, float(scale.reshape(())), zero_point)
    return Quant(b.buffer(f"{value.name}_quint8", tensor), float(scale.reshape(())), zero_point)


@lowers("Add", "Mul")
def binary(b, node) -> bool:
    """quantized::add / mul (with the fused Relu: add_relu / mul_relu); both broadcast."""
    left, right = (b.quant(v) or _quantized_constant(b, v) for v in node.inputs)
    chain = _output_chain(b, node)
    if left is None or right is None or chain is None:
        return False
    functions = {"Add": (torch.ops.quantized.add, torch.ops.quantized.add_relu),
                 "Mul": (torch.ops.quantized.mul, torch.ops.quantized.mul_relu)}[node.op_type]
    result = b.call(functions[bool(chain.relu)], left.node, right.node, *chain.out)
    return chain.finish(b, result, node.op_type)


@lowers("Concat")
def concat(b, node) -> bool:
    held = [b.quant(v) for v in node.inputs]
    output = _output(b, node)
    if any(h is None for h in held) or output is None:
        return False
    q, out = output
    result = b.call(torch.ops.quantized.cat, [h.node for h in held], int(b.attr(node, "axis")), *out)
    return _finish_at(b, q, result, out, "Concat")


# -- activations -----------------------------------------------------------------------------------
def _hard_sigmoid_is_torchs(b, node) -> bool:
    """torch's hardsigmoid is relu6(x + 3) / 6: ONNX's with alpha 1/6 and beta 0.5."""
    alpha, beta = float(b.attr(node, "alpha", 0.2)), float(b.attr(node, "beta", 0.5))
    return np.isclose(alpha, 1 / 6, rtol=1e-6) and beta == 0.5


def _hard_swish_pair(b, node) -> tuple[ir.Node, ir.Node, tuple[float, int]] | None:
    """x · HardSigmoid(x) with no quantization between them: (the Mul, its QuantizeLinear, output)."""
    mul = _single_consumer(b, node.outputs[0], ("Mul",))
    if mul is None or not _hard_sigmoid_is_torchs(b, node):
        return None
    others = [v for v in mul.inputs if v is not node.outputs[0]]
    output = _output(b, mul)
    if len(others) != 1 or others[0] is not node.inputs[0] or output is None:
        return None
    return mul, *output


@lowers("Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "LeakyRelu", "Elu", "Softmax", "Relu", "Clip")
def activation(b, node) -> bool:
    x = b.quant(node.inputs[0])
    if x is None:
        return False
    op = node.op_type
    if op == "HardSigmoid":
        pair = _hard_swish_pair(b, node)
        if pair is not None:  # Keras writes HardSwish as x · HardSigmoid(x)
            mul, q, out = pair
            b.done.add(id(mul))
            return _finish_at(b, q, b.call(torch.ops.quantized.hardswish, x.node, *out), out, "HardSwish")
    output = _output(b, node)
    if output is None:
        return False
    q, out = output
    if op == "Sigmoid":
        result = b.call(torch.ops.quantized.sigmoid, x.node, *out)
    elif op in KERNEL_OUTPUT:
        if op == "HardSigmoid" and not _hard_sigmoid_is_torchs(b, node):
            return False
        result = b.call({"HardSigmoid": F.hardsigmoid, "Tanh": torch.tanh}[op], x.node)
        if KERNEL_OUTPUT[op] != out:
            result = b.call(requantize, result, *out)
    elif op == "HardSwish":
        result = b.call(torch.ops.quantized.hardswish, x.node, *out)
    elif op == "LeakyRelu":
        result = b.call(torch.ops.quantized.leaky_relu, x.node, float(b.attr(node, "alpha", 0.01)), False, *out)
    elif op == "Elu":
        result = b.call(torch.ao.nn.quantized.functional.elu, x.node, *out, float(b.attr(node, "alpha", 1.0)))
    elif op == "Softmax":
        axis, rank = int(b.attr(node, "axis", 1 if b.opset < 13 else -1)), b.rank(node.inputs[0])
        if b.opset < 13 and axis not in (-1, (rank or 0) - 1):  # the 2-D coercion of older opsets
            return False
        result = b.call(torch.ops.quantized.softmax, x.node, axis, *out)
    else:  # Relu, Clip: on the input's grid, exact; then the output's
        bounds = _bounds(b, node)
        if bounds is None:
            return False
        result = b.call(torch.clamp, x.node, *bounds)
        if not _same(x, out):
            result = b.call(requantize, result, *out)
    return _finish_at(b, q, result, out, op)


@lowers("PRelu")
def prelu(b, node) -> bool:
    """One slope: quantized leaky_relu (the slope exact). Per channel: quantized::prelu, whose quint8 slope
    grid must hold 1.0 exactly (the kernel multiplies positive inputs by Q(1.0)); it is used where the
    slopes' rounding on that grid moves no output by more than half a step, else PRelu runs float."""
    x, output = b.quant(node.inputs[0]), _output(b, node)
    slope = b.const(node.inputs[1])
    if x is None or output is None or slope is None:
        return False
    q, out = output
    slope = slope.astype(np.float64)
    if slope.size == 1:
        result = b.call(torch.ops.quantized.leaky_relu, x.node, float(slope.reshape(())), False, *out)
        return _finish_at(b, q, result, out, "PRelu")
    rank, channels = b.rank(node.inputs[0]), slope.size
    if rank is None or rank < 2 or b.shape(node.inputs[0])[1] != channels or (
            slope.ndim > 1 and slope.shape[0] != channels) or slope.ndim > rank - 1:
        return False  # torch's kernel lays a slope vector along dim 1 only
    low, high = min(0.0, slope.min()), max(1.0, slope.max())
    steps = int(QMAX // (high - low))  # grid 1/steps: 1.0 is the integer steps
    zero_point = int(np.ceil(-low * steps))
    if steps < 1 or zero_point + high * steps > QMAX:
        return False
    grid = np.round(slope.reshape(-1) * steps) / steps
    most_negative = (0 - x.zero_point) * x.scale
    if np.abs(grid - slope.reshape(-1)).max() * abs(most_negative) > 0.5 * out[0]:
        return False
    weight = torch.quantize_per_tensor(torch.from_numpy(grid.astype(np.float32)), 1.0 / steps, zero_point,
                                       torch.quint8)
    module = nnq.PReLU(*out, num_parameters=channels)
    module.set_weight(weight)
    return _finish_at(b, q, b.module(node.name or "prelu", module, x.node), out, "PRelu")


# -- means -----------------------------------------------------------------------------------------
def mean_requantized(x: Tensor, dims: List[int], keepdim: bool, scale: float, zero_point: int) -> Tensor:
    """The mean of a quantized tensor over dims, on the output grid: the integers summed in int32, then one
    rounding (a mean on the input's grid, then a requantization, would round twice)."""
    count = 1
    for d in dims:
        count *= x.size(d)
    total = x.int_repr().sum(dims, keepdim=keepdim, dtype=torch.int32) - count * x.q_zero_point()
    q = torch.round(total.to(torch.float64) * (x.q_scale() / (count * scale))) + zero_point
    return torch._make_per_tensor_quantized_tensor(q.clamp(0, 255).to(torch.uint8), scale, zero_point)


@lowers("GlobalAveragePool", "ReduceMean")
def mean(b, node) -> bool:
    x, output, rank = b.quant(node.inputs[0]), _output(b, node), b.rank(node.inputs[0])
    if x is None or output is None or rank is None:
        return False
    keepdim = True
    if node.op_type == "GlobalAveragePool":
        dims = list(range(2, rank))
    else:
        keepdim = bool(b.attr(node, "keepdims", 1))
        axes = b.attr(node, "axes") if b.opset < 18 else (b.ints_or_node(node, 1) if b.has(node, 1) else None)
        if not isinstance(axes, (list, tuple)) or not axes:
            return False  # run-time or empty axes: float
        dims = sorted(int(a) % rank for a in axes)
    q, out = output
    if _same(x, out):  # the plan's same-scale mean: torch's quantized mean rounds once, on that grid
        result = b.call(torch.mean, x.node, dims, keepdim=keepdim)
    else:
        result = b.call(mean_requantized, x.node, dims, keepdim, *out)
    return _finish_at(b, q, result, out, node.op_type)


@lowers("GlobalMaxPool")
def global_max_pool(b, node) -> bool:
    """A max pool over the whole static plane (torch has no quantized amax)."""
    x, dims = b.quant(node.inputs[0]), b.shape(node.inputs[0])
    if x is None or dims is None or len(dims) != 4 or not all(isinstance(d, int) for d in dims[2:]):
        return False
    _hold(b, node.outputs[0], b.call(F.max_pool2d, x.node, dims[2:]), (x.scale, x.zero_point), "GlobalMaxPool")
    return True


@lowers("AveragePool")
def average_pool(b, node) -> bool:
    """torch's quantized avg_pool2d, where the float emitter calls it (the other paddings compute in float);
    one rounding on the input's grid, the plan's same scale."""
    from qconvert.backends.torch.ops.common import spatial_padding
    from qconvert.backends.torch.ops.pool import _pool_args

    x = b.quant(node.inputs[0])
    if x is None:
        return False
    n, kernel, strides, dilations = _pool_args(b, node)
    include, ceil = bool(b.attr(node, "count_include_pad", 0)), bool(b.attr(node, "ceil_mode", 0))
    padding, explicit = spatial_padding(b, node, node.inputs[0], kernel, strides, dilations, pool=True)
    if n != 2 or explicit is not None or any(d != 1 for d in dilations) or (ceil and not include and any(padding)):
        return False
    return _on_quantized(b, node)


# -- data movement, pools, resizes: the float emitter on the quantized tensor -----------------------
def _on_quantized(b, node) -> bool:
    held = b.quant(node.inputs[0])
    if held is None:
        return False
    try:
        with b.on_quantized():
            results = EMITTERS[node.op_type](b, node)
    except UnsupportedOpError:  # e.g. a Resize mode torch has no quantized kernel for: the float emitter
        return False
    results = results if isinstance(results, (list, tuple)) else [results]
    for value, result in zip(node.outputs, results):
        if value is not None:
            b.set(value, result if isinstance(result, Quant) else Quant(result, held.scale, held.zero_point))
    b.count(b.int8_kernels, node.op_type)
    return True


for _op in ON_QUANTIZED:
    lowers(_op)(_on_quantized)


# -- dynamic int8 ----------------------------------------------------------------------------------
def dynamic_linear(weight: np.ndarray, bias: np.ndarray | None) -> torch.nn.Module:
    """y = x @ weight.T + bias with int8 weights (symmetric, per output channel) and activations
    quantized per call (quantized::linear_dynamic)."""
    weight = np.asarray(weight, dtype=np.float32)
    scale = np.maximum(np.abs(weight).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.round(weight / scale[:, None]), -127, 127).astype(np.int8)
    module = nnqd.Linear(weight.shape[1], weight.shape[0], dtype=torch.qint8)
    qweight = torch._make_per_channel_quantized_tensor(
        torch.from_numpy(q), torch.from_numpy(scale.astype(np.float64)), torch.zeros(len(scale), dtype=torch.long), 0)
    module.set_weight_bias(qweight, torch.from_numpy(bias.astype(np.float32)) if bias is not None else None)
    return module

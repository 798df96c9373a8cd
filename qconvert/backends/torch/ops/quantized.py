"""Int8 kernels: the IR's QDQ lowered to torch's quantized ops, and dynamic int8 Linear.

This module is the one place that decides *how* PyTorch runs int8. It uses the quantized kernels and
modules directly (torch.ao.nn.quantized Conv2d/Linear with packed weights, quantized::add/cat, max_pool2d
on quantized tensors), built from the IR's own int8 weights, int32 biases, scales and zero points; the
deprecated eager/FX *workflows* (prepare/convert, observers) are not used. PT2E (torchao) would
re-derive the quantization from a float program; here it is already decided in the IR (measured and
argued in the README).

Activations are quint8 (fbgemm/x86 and qnnpack take unsigned activations): an int8 tensor with scale s and
zero point z is the same quantized function as a uint8 one with scale s and zero point z + 128.

A lowering returns True when it emitted the pattern starting at its node with int8 kernels, False to let
the float emitter run on dequantized inputs (listed in the artifact's facts as float fallbacks).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd

from qconvert.backends.torch.program import Quant
from qconvert.backends.torch.registry import EMITTERS, lowers

# Ops that compute the same on int8 values as on their dequantized floats: they run on the quantized
# tensor and keep its scale and zero point.
PASS_THROUGH = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "DepthToSpace",
                "SpaceToDepth")


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
    held = b.quant(node.inputs[0])
    if held is not None and _activation(b, node) is not None:
        b.set(node.outputs[0], held)  # free until a float op needs it
        return True
    return False


@lowers("QuantizeLinear")
def quantize(b, node) -> bool:
    params = _activation(b, node)
    if params is None:
        return False
    scale, zero_point = params
    held = b.quant(node.inputs[0])
    if held is not None and np.isclose(held.scale, scale, rtol=1e-6) and held.zero_point == zero_point:
        b.set(node.outputs[0], held)
        return True
    if held is not None:
        b.count(b.float_fallbacks, "requantize")
    x = b.input(node, 0)
    b.set(node.outputs[0], Quant(b.call(torch.quantize_per_tensor, x, scale, zero_point, torch.quint8),
                                 scale, zero_point))
    return True


# -- layers ----------------------------------------------------------------------------------------
def _single_consumer(b, value, op_type: str) -> ir.Node | None:
    users = b.consumers(value)
    if len(users) == 1 and users[0].op_type == op_type and not b.is_output(value):
        return users[0]
    return None


def _output_chain(b, node) -> tuple[list[ir.Node], bool, tuple[float, int]] | None:
    """layer -> [Relu] -> QuantizeLinear: the nodes the kernel absorbs, whether Relu is fused, the output."""
    relu = _single_consumer(b, node.outputs[0], "Relu")
    tail = relu.outputs[0] if relu else node.outputs[0]
    q = _single_consumer(b, tail, "QuantizeLinear")
    if q is None or _activation(b, q) is None:
        return None
    return ([relu, q] if relu else [q]), relu is not None, _activation(b, q)


def _qweight(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> torch.Tensor:
    data = torch.from_numpy(np.ascontiguousarray(q.astype(np.int8)))
    if scale.size == 1:
        return torch._make_per_tensor_quantized_tensor(data, float(scale.reshape(())), int(zero.reshape(())))
    return torch._make_per_channel_quantized_tensor(
        data, torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zero.astype(np.int64)), axis)


def _finish(b, node, module, x: Quant, absorbed: list[ir.Node], out: tuple[float, int]) -> bool:
    module.scale, module.zero_point = out
    result = Quant(b.module(node.name or node.op_type.lower(), module, x.node), *out)
    for absorbed_node in absorbed:
        b.done.add(id(absorbed_node))
    b.set(absorbed[-1].outputs[0], result)
    b.count(b.int8_kernels, node.op_type)
    return True


@lowers("Conv")
def conv(b, node) -> bool:
    from qconvert.backends.torch.ops.conv import conv_geometry

    x, weight = b.quant(node.inputs[0]), b.qconsts.get(node.inputs[1].name)
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    chain = _output_chain(b, node)
    if x is None or weight is None or chain is None or weight[0].ndim != 4 or weight[3] != 0:
        return False
    if weight[2].any():
        return False
    g = conv_geometry(b, node, list(weight[0].shape))
    if g["explicit"]:
        return False
    absorbed, relu, out = chain
    q, scale, zero, axis = weight
    cls = nniq.ConvReLU2d if relu else nnq.Conv2d
    out_channels, in_per_group, kh, kw = q.shape
    module = cls(in_per_group * g["groups"], out_channels, (kh, kw), stride=g["stride"], padding=g["padding"],
                 dilation=g["dilation"], groups=g["groups"])
    bias = b.const(bias_value) if bias_value is not None else None
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _finish(b, node, module, x, absorbed, out)


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
    absorbed, relu, out = chain
    if relu:
        return False
    in_channels, out_per_group, kh, kw = q.shape
    module = nnq.ConvTranspose2d(in_channels, out_per_group * g["groups"], (kh, kw), stride=g["stride"],
                                 padding=g["padding"], output_padding=g["output_padding"], groups=g["groups"],
                                 dilation=g["dilation"])
    bias = b.const(bias_value) if bias_value is not None else None
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _finish(b, node, module, x, absorbed, out)


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
    absorbed, relu, out = chain
    module = (nniq.LinearReLU if relu else nnq.Linear)(q.shape[1], q.shape[0])
    module.set_weight_bias(_qweight(q, scale, zero, axis), torch.from_numpy(bias) if bias is not None else None)
    return _finish(b, node, module, x, absorbed, out)


@lowers("Add")
def add(b, node) -> bool:
    left, right = b.quant(node.inputs[0]), b.quant(node.inputs[1])
    chain = _output_chain(b, node)
    if left is None or right is None or chain is None:
        return False
    absorbed, relu, out = chain
    function = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
    result = Quant(b.call(function, left.node, right.node, out[0], out[1]), *out)
    for absorbed_node in absorbed:
        b.done.add(id(absorbed_node))
    b.set(absorbed[-1].outputs[0], result)
    b.count(b.int8_kernels, "Add")
    return True


@lowers("Concat")
def concat(b, node) -> bool:
    held = [b.quant(v) for v in node.inputs]
    q = _single_consumer(b, node.outputs[0], "QuantizeLinear")
    if any(h is None for h in held) or q is None or _activation(b, q) is None:
        return False
    out = _activation(b, q)
    result = Quant(b.call(torch.ops.quantized.cat, [h.node for h in held], int(b.attr(node, "axis")), out[0],
                          out[1]), *out)
    b.done.add(id(q))
    b.set(q.outputs[0], result)
    b.count(b.int8_kernels, "Concat")
    return True


def _pass_through(b, node) -> bool:
    held = b.quant(node.inputs[0])
    if held is None:
        return False
    if node.op_type == "Resize" and (b.attr(node, "mode", "nearest") not in ("nearest", b"nearest")):
        return False
    result = EMITTERS[node.op_type](b, node)
    b.set(node.outputs[0], Quant(result, held.scale, held.zero_point))
    b.count(b.int8_kernels, node.op_type)
    return True


for _op in PASS_THROUGH + ("Resize",):
    lowers(_op)(_pass_through)


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

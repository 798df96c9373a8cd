"""QuantizeLinear / DequantizeLinear computed in float (per tensor, per axis or per block), for float
programs and for whatever the int8 lowering (quantized.py) leaves to float."""

from __future__ import annotations

import onnx_ir as ir
import torch
from torch import Tensor

from qconvert.backends.torch.registry import emits

RANGES = {ir.DataType.INT8: (-128, 127), ir.DataType.UINT8: (0, 255), ir.DataType.INT16: (-32768, 32767),
          ir.DataType.INT32: (-2**31, 2**31 - 1)}


def _broadcast(param: Tensor, x: Tensor, axis: int, block: int) -> Tensor:
    """A per-axis or per-block parameter laid out to broadcast against x."""
    if param.dim() == 0 or param.numel() == 1 and block == 0:
        return param.reshape(())
    if axis < 0:
        axis += x.dim()
    if block > 0:
        return param.repeat_interleave(block, axis).narrow(axis, 0, x.size(axis))
    shape = [1] * x.dim()
    shape[axis] = param.numel()
    return param.reshape(shape)


def quantize(x: Tensor, scale: Tensor, zero: Tensor, axis: int, block: int, low: int, high: int,
             dtype: torch.dtype) -> Tensor:
    s = _broadcast(scale, x, axis, block)
    z = _broadcast(zero, x, axis, block).to(torch.float32)
    q = torch.round(x.to(torch.float32) / s.to(torch.float32)) + z  # round half to even, as ONNX
    return q.clamp(low, high).to(dtype)


def dequantize(q: Tensor, scale: Tensor, zero: Tensor, axis: int, block: int) -> Tensor:
    s = _broadcast(scale, q, axis, block)
    z = _broadcast(zero, q, axis, block)
    return ((q.to(torch.float32) - z.to(torch.float32)) * s.to(torch.float32)).to(scale.dtype)


def _zero(b, node, dtype: torch.dtype):
    if b.has(node, 2):
        return b.input(node, 2)
    return b.buffer(f"{b.unique(node.name or 'q')}_zero", torch.zeros((), dtype=dtype))


@emits("QuantizeLinear")
def quantize_linear(b, node):
    if b.has(node, 2):
        to = b.dtype(node.inputs[2])
    else:
        to = ir.DataType(b.attr(node, "output_dtype", 0) or ir.DataType.UINT8)
    if to not in RANGES:
        raise b.unsupported(node, f"quantizing to {getattr(to, 'name', to)}")
    low, high = RANGES[to]
    dtype = b.torch_dtype(node, to)
    return b.call(quantize, b.input(node, 0), b.input(node, 1), _zero(b, node, dtype), int(b.attr(node, "axis", 1)),
                  int(b.attr(node, "block_size", 0)), low, high, dtype)


@emits("DequantizeLinear")
def dequantize_linear(b, node):
    source = b.dtype(node.inputs[0])
    if source not in RANGES:
        raise b.unsupported(node, f"dequantizing {getattr(source, 'name', source)}")
    return b.call(dequantize, b.input(node, 0), b.input(node, 1), _zero(b, node, b.torch_dtype(node, source)),
                  int(b.attr(node, "axis", 1)), int(b.attr(node, "block_size", 0)))


@emits("Dropout")
def dropout(b, node):
    training = b.const(node.inputs[2]) if b.has(node, 2) else None
    if b.has(node, 2) and (training is None or bool(training.reshape(()))):
        raise b.unsupported(node, "training-mode Dropout is random")
    x = b.input(node, 0)
    if len(node.outputs) > 1 and node.outputs[1] is not None:
        return [x, b.call(torch.ones_like, x, dtype=torch.bool)]
    return x

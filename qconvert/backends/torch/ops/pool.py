"""Pooling: Max/Average/Lp pools (1-D to 3-D), their global forms, MaxUnpool.

torch's pools pad at most half the kernel, average without dilation, and count padding either always or
never; ONNX pools do more. What torch's kernels cannot do directly runs as a depthwise convolution with a
ones kernel (window sums) divided by the window's element count, which is exact for every pads /
dilations / ceil_mode / count_include_pad combination.
"""

from __future__ import annotations

import math
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.ops.common import onnx_pads, spatial_padding, torch_pads
from qconvert.backends.torch.registry import emits

MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _pool_args(b, node):
    kernel = list(b.attr(node, "kernel_shape"))
    n = len(kernel)
    if n not in MAX_POOL:
        raise b.unsupported(node, f"{n}-D pooling")
    strides = list(b.attr(node, "strides", [1] * n))
    dilations = list(b.attr(node, "dilations", [1] * n))
    return n, kernel, strides, dilations


def window_sum(x: Tensor, kernel: List[int], stride: List[int], dilation: List[int], pads: List[int]) -> Tensor:
    """Sums over every pooling window: a ones-kernel convolution of each channel (pads as F.pad lists)."""
    n = len(kernel)
    shape = x.shape
    planes = F.pad(x.reshape([shape[0] * shape[1], 1] + list(shape[2:])), pads)
    ones = torch.ones([1, 1] + kernel, dtype=x.dtype, device=x.device)
    if n == 1:
        y = F.conv1d(planes, ones, None, stride, 0, dilation)
    elif n == 2:
        y = F.conv2d(planes, ones, None, stride, 0, dilation)
    else:
        y = F.conv3d(planes, ones, None, stride, 0, dilation)
    return y.reshape([shape[0], shape[1]] + list(y.shape[2:]))


def average_pool_(x: Tensor, kernel: List[int], stride: List[int], dilation: List[int], pads: List[int],
                  extra: List[int], include_pad: bool) -> Tensor:
    """`pads`: the ONNX pads (F.pad order); `extra`: what ceil_mode adds at the ends, never counted."""
    total = [p + e for p, e in zip(pads, extra)]
    sums = window_sum(x, kernel, stride, dilation, total)
    ones = torch.ones([1, 1] + list(x.shape[2:]), dtype=x.dtype, device=x.device)
    if include_pad:
        ones = F.pad(ones, pads, value=1.0)
        counts = window_sum(ones, kernel, stride, dilation, extra)
    else:
        counts = window_sum(ones, kernel, stride, dilation, total)
    return sums / counts


def _ceil_extra(b, node, n, kernel, strides, dilations, begin, end) -> list[int] | None:
    """Per spatial dim, the zeros ceil_mode appends so a plain (floor) window count gives ONNX's output size;
    None when the spatial dims are unknown."""
    dims = b.shape(node.inputs[0])
    spatial = list(dims[2:]) if dims is not None else [None] * n
    if any(not isinstance(d, int) for d in spatial):
        return None
    extra = []
    for d, k, s, dl, pb, pe in zip(spatial, kernel, strides, dilations, begin, end):
        span = d + pb + pe - ((k - 1) * dl + 1)
        out = math.ceil(span / s) + 1
        if (out - 1) * s >= d + pb:  # ONNX/torch: the last window must start inside the input or left pad
            out -= 1
        extra.append(max(0, (out - 1) * s + (k - 1) * dl + 1 - (d + pb + pe)))
    return extra


def _general_pads(b, node, n, kernel, strides, dilations):
    begin, end = onnx_pads(b, node, node.inputs[0], kernel, strides, dilations)
    ceil = bool(b.attr(node, "ceil_mode", 0))
    extra = _ceil_extra(b, node, n, kernel, strides, dilations, begin, end) if ceil else [0] * n
    if extra is None:
        raise b.unsupported(node, "ceil_mode with this padding needs static spatial dims")
    return torch_pads(begin, end), torch_pads([0] * n, extra)


@emits("MaxPool")
def max_pool(b, node):
    n, kernel, strides, dilations = _pool_args(b, node)
    if int(b.attr(node, "storage_order", 0)):
        raise b.unsupported(node, "storage_order=1 (column-major indices)")
    padding, explicit = spatial_padding(b, node, node.inputs[0], kernel, strides, dilations, pool=True)
    held = b.quant(node.inputs[0])
    x = held.node if held else b.input(node, 0)
    integer = not held and b.dtype(node.inputs[0]) is not None and not b.is_float(node.inputs[0])
    if integer:  # torch's max pools are float only; 8/16-bit integers are exact in float32
        x = b.method("to", x, torch.float32)
    indices = len(node.outputs) > 1 and node.outputs[1] is not None
    if explicit:
        if indices:
            raise b.unsupported(node, "Indices with padding beyond half the kernel")
        x = b.call(F.pad, x, explicit, value=float("-inf"))
    ceil = bool(b.attr(node, "ceil_mode", 0))
    if indices:
        result = b.call(max_pool_with_indices, x, kernel, strides, padding, dilations, ceil)
        import operator

        return [b.call(operator.getitem, result, 0), b.call(operator.getitem, result, 1)]
    y = b.call(MAX_POOL[n], x, kernel, strides, padding, dilations, ceil_mode=ceil)
    return b.method("to", y, b.torch_dtype(node, b.dtype(node.inputs[0]))) if integer else y


def max_pool_with_indices(x: Tensor, kernel: List[int], stride: List[int], padding: List[int],
                          dilation: List[int], ceil: bool) -> List[Tensor]:
    """Indices into the whole input flattened (batch and channel included), as ONNX counts them."""
    n = len(kernel)
    if n == 1:
        y, index = F.max_pool1d_with_indices(x, kernel, stride, padding, dilation, ceil)
    elif n == 2:
        y, index = F.max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil)
    else:
        y, index = F.max_pool3d_with_indices(x, kernel, stride, padding, dilation, ceil)
    plane = 1
    for d in x.shape[2:]:
        plane *= d
    offsets = torch.arange(x.size(0) * x.size(1), device=x.device).reshape([x.size(0), x.size(1)] + [1] * n)
    return [y, index + offsets * plane]


@emits("AveragePool")
def average_pool(b, node):
    n, kernel, strides, dilations = _pool_args(b, node)
    include = bool(b.attr(node, "count_include_pad", 0))
    ceil = bool(b.attr(node, "ceil_mode", 0))
    padding, explicit = spatial_padding(b, node, node.inputs[0], kernel, strides, dilations, pool=True)
    if explicit is None and all(d == 1 for d in dilations) and (not ceil or include or not any(padding)):
        return b.call(AVG_POOL[n], b.input(node, 0), kernel, strides, padding, ceil, include)
    pads, extra = _general_pads(b, node, n, kernel, strides, dilations)
    return b.call(average_pool_, b.input(node, 0), kernel, strides, dilations, pads, extra, include)


def lp_pool_(x: Tensor, kernel: List[int], stride: List[int], dilation: List[int], pads: List[int], p: float) -> Tensor:
    return torch.pow(window_sum(torch.pow(torch.abs(x), p), kernel, stride, dilation, pads), 1.0 / p)


@emits("LpPool")
def lp_pool(b, node):
    n, kernel, strides, dilations = _pool_args(b, node)
    pads, extra = _general_pads(b, node, n, kernel, strides, dilations)
    pads = [p + e for p, e in zip(pads, extra)]
    return b.call(lp_pool_, b.input(node, 0), kernel, strides, dilations, pads, float(b.attr(node, "p", 2)))


def global_lp(x: Tensor, p: float) -> Tensor:
    dims = list(range(2, x.dim()))
    return torch.pow(torch.sum(torch.pow(torch.abs(x), p), dims, keepdim=True), 1.0 / p)


@emits("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(b, node):
    x = b.input(node, 0)
    rank = b.rank(node.inputs[0]) or 4
    dims = list(range(2, rank))
    if node.op_type == "GlobalAveragePool":
        return b.call(torch.mean, x, dims, keepdim=True)
    if node.op_type == "GlobalLpPool":
        return b.call(global_lp, x, float(b.attr(node, "p", 2)))
    return b.call(torch.amax, x, dims, keepdim=True)


def max_unpool(x: Tensor, indices: Tensor, shape: List[int], out_shape: List[int]) -> Tensor:
    """Indices are into the unpooled tensor flattened (as MaxPool's second output counts them); a larger
    output_shape pads its ends with zeros, as the reference does."""
    total = 1
    for d in shape:
        total *= d
    out = torch.zeros(total, dtype=x.dtype, device=x.device)
    out = out.scatter(0, indices.reshape(-1), x.reshape(-1)).reshape(shape)
    pads: List[int] = []
    for i in range(len(shape) - 1, -1, -1):
        pads += [0, out_shape[i] - shape[i]]
    return F.pad(out, pads)


def _unpool_shape(x: Tensor, kernel: List[int], stride: List[int], pads: List[int]) -> List[int]:
    n = len(kernel)
    out = [x.size(0), x.size(1)]
    for i in range(n):
        out.append((x.size(2 + i) - 1) * stride[i] + kernel[i] - pads[i] - pads[n + i])
    return out


@emits("MaxUnpool")
def max_unpool_op(b, node):
    kernel = list(b.attr(node, "kernel_shape"))
    n = len(kernel)
    strides = list(b.attr(node, "strides", [1] * n))
    pads = list(b.attr(node, "pads", [0] * (2 * n)))
    x = b.input(node, 0)
    shape = b.call(_unpool_shape, x, kernel, strides, pads)
    out_shape = b.ints_or_node(node, 2) if b.has(node, 2) else shape
    return b.call(max_unpool, x, b.input(node, 1), shape, out_shape)

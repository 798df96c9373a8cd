"""Normalizations: Layer, Batch (inference), Instance, Group, RMS, Lp, LRN, MeanVariance."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.registry import emits


def layer_norm_(x: Tensor, scale: Tensor, bias: Optional[Tensor], axis: int, eps: float) -> List[Tensor]:
    """ONNX LayerNormalization with its optional Mean and InvStdDev outputs, computed in float32
    (stash_type 1) for half inputs."""
    if axis < 0:
        axis += x.dim()
    dims = list(range(axis, x.dim()))
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = work.mean(dims, keepdim=True)
    centered = work - mean
    inv_std = torch.rsqrt((centered * centered).mean(dims, keepdim=True) + eps)
    y = (centered * inv_std).to(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return [y, mean, inv_std]


@emits("LayerNormalization")
def layer_norm(b, node):
    axis = int(b.attr(node, "axis", -1))
    eps = float(b.attr(node, "epsilon", 1e-5))
    dims, scale = b.shape(node.inputs[0]), b.const(node.inputs[1])
    rank = len(dims) if dims is not None else None
    start = axis + rank if rank is not None and axis < 0 else axis
    wanted = [v for v in node.outputs[1:] if v is not None and (b.consumers(v) or b.is_output(v))]
    if not wanted and scale is not None and rank is not None and all(isinstance(d, int) for d in dims[start:]) \
            and tuple(dims[start:]) == scale.shape:
        return b.call(F.layer_norm, b.input(node, 0), list(scale.shape), b.input(node, 1), b.input(node, 2), eps)
    result = b.call(layer_norm_, b.input(node, 0), b.input(node, 1), b.input(node, 2), axis, eps)
    import operator

    return [b.call(operator.getitem, result, i) for i in range(len(node.outputs))]


@emits("BatchNormalization")
def batch_norm(b, node):
    if int(b.attr(node, "training_mode", 0)) or len([v for v in node.outputs if v is not None]) > 1:
        raise b.unsupported(node, "training-mode BatchNormalization (running statistics outputs)")
    return b.call(F.batch_norm, b.input(node, 0), b.input(node, 3), b.input(node, 4), b.input(node, 1),
                  b.input(node, 2), False, 0.0, float(b.attr(node, "epsilon", 1e-5)))


@emits("InstanceNormalization")
def instance_norm(b, node):
    return b.call(F.instance_norm, b.input(node, 0), None, None, b.input(node, 1), b.input(node, 2),
                  True, 0.0, float(b.attr(node, "epsilon", 1e-5)))


def group_norm_(x: Tensor, groups: int, scale: Tensor, bias: Tensor, eps: float) -> Tensor:
    channels = x.size(1)
    if scale.numel() != channels:  # opset 18: one scale and bias per group
        scale = scale.repeat_interleave(channels // groups)
        bias = bias.repeat_interleave(channels // groups)
    return F.group_norm(x, groups, scale, bias, eps)


@emits("GroupNormalization")
def group_norm(b, node):
    return b.call(group_norm_, b.input(node, 0), int(b.attr(node, "num_groups")), b.input(node, 1),
                  b.input(node, 2), float(b.attr(node, "epsilon", 1e-5)))


def rms_norm_(x: Tensor, scale: Tensor, axis: int, eps: float) -> Tensor:
    if axis < 0:
        axis += x.dim()
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    y = work * torch.rsqrt((work * work).mean(list(range(axis, x.dim())), keepdim=True) + eps)
    return y.to(x.dtype) * scale


@emits("RMSNormalization")
def rms_norm(b, node):
    return b.call(rms_norm_, b.input(node, 0), b.input(node, 1), int(b.attr(node, "axis", -1)),
                  float(b.attr(node, "epsilon", 1e-5)))


def lp_normalize(x: Tensor, axis: int, p: int) -> Tensor:
    norm = torch.sum(torch.abs(x), axis, keepdim=True) if p == 1 else torch.sqrt(torch.sum(x * x, axis, keepdim=True))
    return torch.where(norm == 0, torch.zeros_like(x), x / norm)


@emits("LpNormalization")
def lp_normalization(b, node):
    p = int(b.attr(node, "p", 2))
    if p not in (1, 2):
        raise b.unsupported(node, f"p={p} (ONNX defines 1 and 2)")
    return b.call(lp_normalize, b.input(node, 0), int(b.attr(node, "axis", -1)), p)


def lrn_(x: Tensor, size: int, alpha: float, beta: float, bias: float) -> Tensor:
    """Sum of squares over channels c - floor((size-1)/2) .. c + ceil((size-1)/2), as ONNX windows them."""
    n, c = x.size(0), x.size(1)
    squares = (x * x).reshape(n, 1, c, -1)
    squares = F.pad(squares, [0, 0, (size - 1) // 2, size // 2])
    total = F.avg_pool2d(squares, [size, 1], stride=1) * size
    return x / torch.pow(bias + alpha / size * total.reshape(x.shape), beta)


@emits("LRN")
def lrn(b, node):
    return b.call(lrn_, b.input(node, 0), int(b.attr(node, "size")), float(b.attr(node, "alpha", 1e-4)),
                  float(b.attr(node, "beta", 0.75)), float(b.attr(node, "bias", 1.0)))


def mean_variance(x: Tensor, axes: List[int]) -> Tensor:
    mean = x.mean(axes, keepdim=True)
    std = torch.sqrt((x * x).mean(axes, keepdim=True) - mean * mean)
    return (x - mean) / (std + 1e-9)


@emits("MeanVarianceNormalization")
def mvn(b, node):
    return b.call(mean_variance, b.input(node, 0), list(b.attr(node, "axes", [0, 2, 3])))

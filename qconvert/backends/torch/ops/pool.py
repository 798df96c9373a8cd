"""Pooling and Resize."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qconvert.backends.torch.ops.common import spatial_padding
from qconvert.backends.torch.registry import emits

MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pool_args(b, node):
    kernel = list(b.attr(node, "kernel_shape"))
    n = len(kernel)
    strides = list(b.attr(node, "strides", [1] * n))
    dilations = list(b.attr(node, "dilations", [1] * n))
    padding, explicit = spatial_padding(b, node, node.inputs[0], kernel, strides, dilations)
    return n, kernel, strides, dilations, padding, explicit


@emits("MaxPool")
def max_pool(b, node):
    n, kernel, strides, dilations, padding, explicit = _pool_args(b, node)
    x = b.input(node, 0) if not b.quant(node.inputs[0]) else b.quant(node.inputs[0]).node
    if explicit:
        x = b.call(F.pad, x, explicit, value=float("-inf"))
    return b.call(MAX_POOL[n], x, kernel, strides, padding, dilations,
                  ceil_mode=bool(b.attr(node, "ceil_mode", 0)))


@emits("AveragePool")
def average_pool(b, node):
    n, kernel, strides, dilations, padding, explicit = _pool_args(b, node)
    x = b.input(node, 0)
    if explicit:
        x = b.call(F.pad, x, explicit)
    return b.call(AVG_POOL[n], x, kernel, strides, padding, bool(b.attr(node, "ceil_mode", 0)),
                  bool(b.attr(node, "count_include_pad", 0)) or bool(explicit))


@emits("GlobalAveragePool", "GlobalMaxPool")
def global_pool(b, node):
    x = b.input(node, 0)
    rank = b.rank(node.inputs[0]) or 4
    dims = list(range(2, rank))
    if node.op_type == "GlobalAveragePool":
        return b.call(torch.mean, x, dims, keepdim=True)
    return b.call(torch.amax, x, dims, keepdim=True)


@emits("Resize", "Upsample")
def resize(b, node):
    mode = b.attr(node, "mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    coordinate = b.attr(node, "coordinate_transformation_mode", "half_pixel")
    coordinate = coordinate.decode() if isinstance(coordinate, bytes) else coordinate
    scales = b.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if node.op_type == "Upsample":
        scales = b.const(node.inputs[1])
    sizes = b.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
    held = b.quant(node.inputs[0])
    x = held.node if held else b.input(node, 0)
    kwargs = {}
    if mode == "nearest":
        nearest = b.attr(node, "nearest_mode", "round_prefer_floor")
        nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
        factors = [float(s) for s in scales[2:]] if scales is not None and scales.size else None
        integer = factors is not None and all(f >= 1 and f.is_integer() for f in factors)
        if coordinate == "asymmetric" and nearest == "floor":
            kwargs["mode"] = "nearest"
        elif integer and coordinate in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn"):
            kwargs["mode"] = "nearest"  # integer upscaling: every half-pixel rounding picks floor(x / s)
        elif coordinate in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
            kwargs["mode"] = "nearest-exact"
        else:
            raise ValueError(f"Resize {node.name}: nearest with {coordinate}/{nearest} is not supported")
    elif mode == "linear":
        kwargs["mode"] = "bilinear" if (b.rank(node.inputs[0]) or 4) == 4 else "linear"
        if coordinate == "align_corners":
            kwargs["align_corners"] = True
        elif coordinate in ("half_pixel", "pytorch_half_pixel"):
            kwargs["align_corners"] = False
        else:
            raise ValueError(f"Resize {node.name}: linear with {coordinate} is not supported")
    else:
        raise ValueError(f"Resize {node.name}: mode {mode} is not supported")
    if sizes is not None and sizes.size:
        kwargs["size"] = [int(s) for s in sizes[2:]]
    else:
        kwargs["scale_factor"] = [float(s) for s in scales[2:]]
    return b.call(F.interpolate, x, **kwargs)

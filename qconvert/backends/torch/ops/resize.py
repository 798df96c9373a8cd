"""Resize and Upsample.

Where torch's F.interpolate computes exactly what ONNX asks (nearest asymmetric/floor, nearest-exact,
(bi/tri)linear half_pixel or align_corners, bicubic A=-0.75), the program calls it, with sizes computed at
run time if need be. Every other combination ONNX defines (asymmetric or half_pixel_symmetric linear,
other nearest roundings, cubic coefficients, exclude_outside, antialias, tf_crop_and_resize,
keep_aspect_ratio_policy) needs static input and output sizes: each resized axis then becomes a constant
interpolation matrix (or a nearest index) built at emit time with ONNX's own formulas (the reference
implementation's, onnx.reference.ops.op_resize), applied axis by axis as the reference does.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.ops.common import string
from qconvert.backends.torch.registry import emits

LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}
COORDINATES = ("align_corners", "asymmetric", "tf_crop_and_resize", "pytorch_half_pixel", "half_pixel",
               "half_pixel_symmetric", "tf_half_pixel_for_nn")


def apply_weights(x: Tensor, weights: Tensor, axis: int) -> Tensor:
    """out[..., o, ...] = sum_i weights[o, i] * x[..., i, ...] along `axis`."""
    return torch.movedim(torch.matmul(torch.movedim(x, axis, -1), weights.t()), -1, axis)


def _coordinates(coord: str, out: int, size: int, scale: float, roi0: float, roi1: float) -> Tensor:
    y = torch.arange(out, dtype=torch.float64)
    width = scale * size
    if coord == "align_corners":
        return torch.zeros(out, dtype=torch.float64) if width == 1 else y * (size - 1) / (width - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_crop_and_resize":
        if width == 1:
            x = torch.full([out], (roi1 - roi0) * (size - 1) / 2, dtype=torch.float64)
        else:
            x = y * (roi1 - roi0) * (size - 1) / (width - 1)
        return x + roi0 * (size - 1)
    if coord == "pytorch_half_pixel" and width == 1:
        return torch.full([out], -0.5, dtype=torch.float64)
    if coord == "half_pixel_symmetric":
        return size / 2 * (1 - out / width) + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel, pytorch_half_pixel


def _cubic(v: Tensor, a: float) -> Tensor:
    v = v.abs()
    inner = (a + 2) * v ** 3 - (a + 3) * v ** 2 + 1
    outer = a * v ** 3 - 5 * a * v ** 2 + 8 * a * v - 4 * a
    return torch.where(v <= 1, inner, torch.where(v < 2, outer, torch.zeros_like(v)))


def _coefficients(mode: str, r: Tensor, scale: float, a: float, antialias: bool, nearest: str) -> Tensor:
    """(out, n) weights of the n neighbours of each output position; r in (0, 1], 1 on exact integers."""
    if mode == "nearest":
        if nearest == "round_prefer_floor":
            up = r > 0.5
        elif nearest == "round_prefer_ceil":
            up = r >= 0.5
        else:
            up = torch.full_like(r, nearest == "ceil", dtype=torch.bool)
        up = up | (r == 1)
        return torch.stack([(~up).double(), up.double()], 1)
    if not antialias:
        if mode == "linear":
            return torch.stack([1 - r, r], 1)
        return torch.stack([_cubic(r + 1, a), _cubic(r, a), _cubic(1 - r, a), _cubic(2 - r, a)], 1)
    s = min(scale, 1.0)
    start = int(math.floor((-1 if mode == "linear" else -2) / s) + 1)
    args = (torch.arange(start, 2 - start, dtype=torch.float64).unsqueeze(0) - r.unsqueeze(1)) * s
    c = (1 - args.abs()).clamp(0, 1) if mode == "linear" else _cubic(args, a)
    return c / c.sum(1, keepdim=True)


def axis_weights(size: int, out: int, scale: float, mode: str, coord: str, nearest: str, a: float,
                 exclude_outside: bool, antialias: bool, roi0: float, roi1: float) -> Tuple[Tensor, Tensor]:
    """(out, size) float64 interpolation weights along one axis, as onnx.reference.ops.op_resize computes
    them (neighbours of each source coordinate, edge-clamped), and which outputs extrapolate."""
    x = _coordinates(coord, out, size, scale, roi0, roi1)
    outside = (x < 0) | (x > size - 1)
    if coord != "tf_crop_and_resize":
        outside = torch.zeros_like(outside)
    base = torch.floor(x)
    ratios = torch.where(x == base, torch.ones_like(x), x - base)
    coeffs = _coefficients(mode, ratios, scale, a, antialias, nearest)
    n = coeffs.size(1)
    pad = (n + 1) // 2
    padded = x + pad
    p = torch.floor(padded)
    frac = padded - p
    if n % 2 == 0:
        offset = torch.where(frac == 0, torch.full_like(frac, -(n // 2)), torch.full_like(frac, -(n // 2) + 1))
    else:
        low = -((n - 1) // 2)
        offset = torch.where(frac <= 0.5, torch.full_like(frac, low), torch.full_like(frac, low + 1))
    neighbors = (p + offset).long().unsqueeze(1) + torch.arange(n).unsqueeze(0) - pad
    if exclude_outside:
        coeffs = torch.where((neighbors < 0) | (neighbors >= size), torch.zeros_like(coeffs), coeffs)
        total = coeffs.sum(1, keepdim=True)
        coeffs = coeffs / torch.where(total == 0, torch.ones_like(total), total)
    weights = torch.zeros(out, size, dtype=torch.float64)
    return weights.scatter_add_(1, neighbors.clamp(0, size - 1), coeffs), outside


def resize_exact(x: Tensor, factors: List[float], out: List[int], roi: List[float], mode: str, coord: str,
                 nearest: str, a: float, exclude_outside: bool, antialias: bool, extrapolation: float) -> Tensor:
    """ONNX Resize axis by axis (the reference's order), for sizes known only at run time."""
    rank = x.dim()
    outside_any = torch.zeros([1] * rank, dtype=torch.bool, device=x.device)
    for axis in range(rank):
        size = x.size(axis)
        roi0, roi1 = (roi[axis], roi[axis + rank]) if len(roi) else (0.0, 1.0)
        if abs(factors[axis] - 1.0) < 1e-9 and out[axis] == size and abs(roi0) < 1e-9 and abs(roi1 - 1) < 1e-9:
            continue
        weights, outside = axis_weights(size, out[axis], factors[axis], mode, coord, nearest, a, exclude_outside,
                                        antialias, roi0, roi1)
        if mode == "nearest":
            x = x.index_select(axis, weights.argmax(1).to(x.device))
        else:
            x = apply_weights(x, weights.to(x.dtype).to(x.device), axis)
        shape = [1] * rank
        shape[axis] = out[axis]
        outside_any = outside_any | outside.reshape(shape).to(x.device)
    if coord == "tf_crop_and_resize":
        x = torch.where(outside_any, torch.full_like(x, extrapolation), x)
    return x


def output_geometry(in_dims: List[int], scales: List[float], sizes: List[int], axes: List[int],
                    policy: str) -> Tuple[List[float], List[int]]:
    """The per-axis scale factors and output sizes ONNX derives from scales or sizes (and axes, policy)."""
    rank = len(in_dims)
    resized = axes if len(axes) else list(range(rank))
    factors = [1.0] * rank
    out = list(in_dims)
    if len(sizes):
        for i in range(len(resized)):
            out[resized[i]] = sizes[i]
            factors[resized[i]] = sizes[i] / in_dims[resized[i]] if in_dims[resized[i]] else 1.0
        if policy != "stretch":
            picked = factors[resized[0]]
            for axis in resized:
                picked = min(picked, factors[axis]) if policy == "not_larger" else max(picked, factors[axis])
            for axis in resized:
                factors[axis] = picked
                out[axis] = int(picked * in_dims[axis] + 0.5)
    else:
        for i in range(len(resized)):
            factors[resized[i]] = scales[i]
            out[resized[i]] = int(scales[i] * in_dims[resized[i]])
    return factors, out


def resize_runtime(x: Tensor, scales: List[float], sizes: List[int], axes: List[int], roi: List[float],
                   policy: str, mode: str, coord: str, nearest: str, cubic_a: float, exclude_outside: bool,
                   antialias: bool, extrapolation: float) -> Tensor:
    rank = x.dim()
    dims = [d + rank if d < 0 else d for d in axes]
    full_roi: List[float] = []
    if len(roi) and len(dims):
        full_roi = [0.0] * rank + [1.0] * rank
        for i in range(len(dims)):
            full_roi[dims[i]], full_roi[rank + dims[i]] = roi[i], roi[len(dims) + i]
    elif len(roi):
        full_roi = roi
    factors, out = output_geometry(x.shape, scales, sizes, dims, policy)
    return resize_exact(x, factors, out, full_roi, mode, coord, nearest, cubic_a, exclude_outside, antialias,
                        extrapolation)


def float_list(values: Tensor) -> List[float]:
    out: List[float] = values.double().reshape(-1).tolist()
    return out


def _attrs(b, node) -> dict:
    legacy = node.op_type == "Upsample" or b.opset < 11
    mode = string(b.attr(node, "mode", "nearest"))
    return {
        "mode": "linear" if mode in ("linear", "bilinear", "trilinear") else mode,
        "coord": "asymmetric" if legacy else string(b.attr(node, "coordinate_transformation_mode", "half_pixel")),
        "nearest": "floor" if legacy else string(b.attr(node, "nearest_mode", "round_prefer_floor")),
        "a": float(b.attr(node, "cubic_coeff_a", -0.75)),
        "exclude": bool(b.attr(node, "exclude_outside", 0)),
        "antialias": bool(b.attr(node, "antialias", 0)),
        "extrapolation": float(b.attr(node, "extrapolation_value", 0.0)),
        "policy": string(b.attr(node, "keep_aspect_ratio_policy", "stretch")),
        "axes": b.attr(node, "axes"),
    }


def _torch_kwargs(attrs: dict, rank: int | None, spatial_out: list | None, scales: list | None) -> dict | None:
    """F.interpolate's arguments when it computes exactly this Resize, else None."""
    mode, coord, nearest = attrs["mode"], attrs["coord"], attrs["nearest"]
    if attrs["antialias"] or attrs["policy"] != "stretch" or rank not in LINEAR:
        return None
    integer_up = scales is not None and all(s >= 1 and float(s).is_integer() for s in scales)
    if mode == "nearest":
        if coord == "asymmetric" and nearest == "floor":
            return {"mode": "nearest"}
        if coord == "half_pixel" and nearest == "round_prefer_ceil":
            return {"mode": "nearest-exact"}
        if integer_up and coord in ("half_pixel", "pytorch_half_pixel") and nearest.startswith("round_prefer"):
            return {"mode": "nearest"}  # integer upscaling: every half-pixel rounding picks floor(x / s)
        if integer_up and coord == "tf_half_pixel_for_nn" and nearest == "floor":
            return {"mode": "nearest"}
        return None
    out_above_one = spatial_out is not None and all(isinstance(d, int) and d > 1 for d in spatial_out)
    if mode == "linear" and coord == "align_corners":
        return {"mode": LINEAR[rank], "align_corners": True}
    if mode == "linear" and (coord == "half_pixel" or (coord == "pytorch_half_pixel" and out_above_one)):
        return {"mode": LINEAR[rank], "align_corners": False}
    if mode == "cubic" and rank == 4 and attrs["a"] == -0.75 and not attrs["exclude"]:
        if coord == "align_corners":
            return {"mode": "bicubic", "align_corners": True}
        if coord == "half_pixel" or (coord == "pytorch_half_pixel" and out_above_one):
            return {"mode": "bicubic", "align_corners": False}
    return None


@emits("Resize", "Upsample")
def resize(b, node):
    attrs = _attrs(b, node)
    if attrs["mode"] not in ("nearest", "linear", "cubic"):
        raise b.unsupported(node, f"mode {attrs['mode']}")
    if attrs["coord"] not in COORDINATES:
        raise b.unsupported(node, f"coordinate_transformation_mode {attrs['coord']}")
    in_dims = b.shape(node.inputs[0])
    rank = len(in_dims) if in_dims is not None else None
    if node.op_type == "Upsample" or b.opset < 11:
        scales_at, sizes_at, roi_at = (1 if b.has(node, 1) else None), None, None
        scales = b.const(node.inputs[1]) if scales_at else np.array(b.attr(node, "scales"), np.float32)
    else:
        scales_at, sizes_at, roi_at = 2, 3, 1
        scales = b.const(node.inputs[2]) if b.has(node, 2) else None
    sizes = b.const(node.inputs[sizes_at]) if sizes_at and b.has(node, sizes_at) else None
    scales = scales if scales is not None and scales.size else None
    sizes = sizes if sizes is not None and sizes.size else None
    runtime_sizes = sizes is None and sizes_at is not None and b.has(node, sizes_at) and \
        b.const(node.inputs[sizes_at]) is None
    runtime_scales = scales is None and scales_at is not None and b.has(node, scales_at) and \
        b.const(node.inputs[scales_at]) is None
    axes = list(attrs["axes"]) if attrs["axes"] is not None else None
    if axes is not None and rank is not None:
        axes = [a + rank if a < 0 else a for a in axes]
        if scales is not None:
            full = np.ones(rank, np.float64)
            full[axes] = scales
            scales = full
        if sizes is not None:
            if any(not isinstance(d, int) for d in in_dims):
                raise b.unsupported(node, "axes with sizes needs static input dims")
            full = np.array(in_dims, np.int64)
            full[axes] = sizes
            sizes = full
    elif axes is not None:
        raise b.unsupported(node, "axes on an input of unknown rank")
    held = b.quant(node.inputs[0])
    x = held.node if held else b.input(node, 0)

    # -- torch's interpolate, where it is exact ------------------------------------------------------
    leading_kept = (scales is None or list(scales[:2]) == [1, 1]) and (
        sizes is None or (in_dims is not None and list(sizes[:2]) == list(in_dims[:2])))
    spatial_out = None
    if sizes is not None:
        spatial_out = [int(s) for s in sizes[2:]]
    elif scales is not None and in_dims is not None and all(isinstance(d, int) for d in in_dims[2:]):
        spatial_out = [int(float(s) * d) for s, d in zip(scales[2:], in_dims[2:])]
    kwargs = _torch_kwargs(attrs, rank, spatial_out, [float(s) for s in scales[2:]] if scales is not None else None)
    if kwargs is not None and leading_kept and axes in (None, list(range(2, rank))):
        if sizes is not None:
            kwargs["size"] = [int(s) for s in sizes[2:]]
        elif scales is not None:
            kwargs["scale_factor"] = [float(s) for s in scales[2:]]
        elif runtime_sizes and axes is None:
            from qconvert.backends.torch.ops.common import int_list

            kwargs["size"] = b.call(_spatial, b.call(int_list, b.input(node, sizes_at)))
        if "size" in kwargs or "scale_factor" in kwargs:  # run-time scales: the exact path below
            return b.call(F.interpolate, x, **kwargs)

    # -- the exact path: ONNX's interpolation weights, one axis at a time -------------------------------
    if held is not None:
        raise b.unsupported(node, f"int8 {attrs['mode']} with {attrs['coord']}")
    if attrs["coord"] == "tf_half_pixel_for_nn":
        raise b.unsupported(node, "tf_half_pixel_for_nn other than integer nearest upscaling")
    if attrs["mode"] != "nearest" and not b.is_float(node.inputs[0]):
        raise b.unsupported(node, f"{attrs['mode']} interpolation of integers")
    roi = []
    if attrs["coord"] == "tf_crop_and_resize":
        if not (roi_at and b.has(node, roi_at)):
            raise b.unsupported(node, "tf_crop_and_resize without a roi")
        roi = b.const(node.inputs[roi_at])
        roi = [float(v) for v in roi.reshape(-1)] if roi is not None else b.call(float_list, b.input(node, roi_at))
    options = (attrs["mode"], attrs["coord"], attrs["nearest"], attrs["a"], attrs["exclude"], attrs["antialias"])
    static = in_dims is not None and all(isinstance(d, int) for d in in_dims) and not (
        runtime_sizes or runtime_scales) and isinstance(roi, list)
    if not static:  # sizes or scales known at run time only: the weights are computed in the program
        given_scales = b.call(float_list, b.input(node, scales_at)) if runtime_scales else (
            [float(v) for v in b.const(node.inputs[scales_at]).reshape(-1)] if scales is not None else [])
        given_sizes = b.ints_or_node(node, sizes_at) if runtime_sizes else (
            [int(v) for v in b.const(node.inputs[sizes_at]).reshape(-1)] if sizes is not None else [])
        if runtime_scales and sizes_at is not None and b.has(node, sizes_at):
            raise b.unsupported(node, "both scales and sizes given")
        return b.call(resize_runtime, x, given_scales, given_sizes, list(attrs["axes"] or []), roi,
                      attrs["policy"], *options, attrs["extrapolation"])
    if axes is not None and roi:
        full = [0.0] * rank + [1.0] * rank
        for i, a in enumerate(axes):
            full[a], full[rank + a] = roi[i], roi[len(axes) + i]
        roi = full
    factors, out = output_geometry(
        list(in_dims), [float(v) for v in scales] if sizes is None else [],
        [int(v) for v in sizes] if sizes is not None else [], [], attrs["policy"] if axes is None else "stretch")
    if axes is not None and attrs["policy"] != "stretch":
        factors, out = output_geometry(list(in_dims), [], [int(sizes[a]) for a in axes], axes, attrs["policy"])
    name = b.unique(node.name or "resize")
    dtype = b.torch_dtype(node, b.dtype(node.inputs[0]))
    outside_any = None
    for axis in range(rank):
        pair = (roi[axis], roi[axis + rank]) if roi else (0.0, 1.0)
        if math.isclose(factors[axis], 1.0) and out[axis] == in_dims[axis] and math.isclose(pair[0], 0.0) \
                and math.isclose(pair[1], 1.0):
            continue  # identity along this axis, as the reference skips it
        weights, outside = axis_weights(in_dims[axis], out[axis], factors[axis], *options[:2], attrs["nearest"],
                                        attrs["a"], attrs["exclude"], attrs["antialias"], *pair)
        if attrs["mode"] == "nearest":
            x = b.call(torch.index_select, x, axis, b.buffer(f"{name}_index{axis}", weights.argmax(1)))
        else:
            x = b.call(apply_weights, x, b.buffer(f"{name}_weights{axis}", weights.to(dtype)), axis)
        if attrs["coord"] == "tf_crop_and_resize" and bool(outside.any()):
            shape = [1] * rank
            shape[axis] = out[axis]
            mask = outside.reshape(shape)
            outside_any = mask if outside_any is None else (outside_any | mask)
    if outside_any is not None:
        mask = b.buffer(f"{name}_outside", outside_any)
        x = b.call(torch.where, mask, b.call(torch.full_like, x, attrs["extrapolation"]), x)
    return x


def _spatial(sizes: List[int]) -> List[int]:
    return sizes[2:]

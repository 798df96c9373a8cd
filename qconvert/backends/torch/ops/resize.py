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
from typing import List

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


def _coordinates(coord: str, out: int, size: int, scale: float, roi: tuple[float, float] | None) -> np.ndarray:
    y = np.arange(out, dtype=np.float64)
    width = scale * size
    if coord == "align_corners":
        return np.zeros(out) if width == 1 else y * (size - 1) / (width - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_crop_and_resize":
        if width == 1:
            x = np.full(out, (roi[1] - roi[0]) * (size - 1) / 2)
        else:
            x = y * (roi[1] - roi[0]) * (size - 1) / (width - 1)
        return x + roi[0] * (size - 1)
    if coord == "pytorch_half_pixel":
        return np.full(out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if coord == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / width)
        return offset + (y + 0.5) / scale - 0.5
    raise ValueError(coord)


def _coefficients(mode: str, ratio: float, scale: float, a: float, antialias: bool, nearest: str) -> np.ndarray:
    if mode == "nearest":
        if ratio == 1 or float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False,
              "ceil": True}[nearest]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    if mode == "linear" and not antialias:
        return np.array([1 - ratio, ratio])
    if mode == "linear":
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        args = (np.arange(start, start + 2 - 2 * start) - ratio) * s
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum()
    if not antialias:
        r = ratio
        return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                         ((a + 2) * r - (a + 3)) * r * r + 1,
                         ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                         ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a])
    s = min(scale, 1.0)

    def kernel(v: float) -> float:
        v = abs(v)
        if v <= 1:
            return (a + 2) * v ** 3 - (a + 3) * v ** 2 + 1
        return a * v ** 3 - 5 * a * v ** 2 + 8 * a * v - 4 * a if v < 2 else 0.0

    start = int(np.floor(-2 / s) + 1)
    c = np.array([kernel(s * (i - ratio)) for i in range(start, 2 - start)])
    return c / c.sum()


def axis_matrix(size: int, out: int, scale: float, mode: str, coord: str, nearest: str, a: float,
                exclude_outside: bool, antialias: bool, roi) -> tuple[np.ndarray, np.ndarray | None]:
    """(out, size) interpolation weights along one axis, and which outputs extrapolate (tf_crop_and_resize)."""
    x = _coordinates(coord, out, size, scale, roi)
    outside = ((x < 0) | (x > size - 1)) if coord == "tf_crop_and_resize" else None
    base = np.floor(x).astype(np.int64)
    ratios = np.where(x == base, 1.0, x - base)
    matrix = np.zeros((out, size), np.float64)
    for o in range(out):
        coeffs = _coefficients(mode, float(ratios[o]), scale, a, antialias, nearest)
        n = len(coeffs)
        pad = int(np.ceil(n / 2))
        padded = x[o] + pad
        p = int(np.floor(padded))
        frac = padded - p
        if n % 2 == 0:
            offset = -(n // 2) if frac == 0 else -(n // 2) + 1
        else:
            offset = -((n - 1) // 2) + (0 if frac <= 0.5 else 1)
        neighbors = p + offset + np.arange(n) - pad
        if exclude_outside:
            coeffs = np.where((neighbors < 0) | (neighbors >= size), 0.0, coeffs)
            total = coeffs.sum()
            coeffs = coeffs / (total if total != 0 else 1.0)
        for c, i in zip(coeffs, np.clip(neighbors, 0, size - 1)):
            matrix[o, i] += c
    return matrix, outside


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
        else:
            raise b.unsupported(node, "scales computed at run time")
        return b.call(F.interpolate, x, **kwargs)

    # -- the exact path: one constant matrix per resized axis --------------------------------------------
    if held is not None:
        raise b.unsupported(node, f"int8 {attrs['mode']} with {attrs['coord']}")
    if attrs["coord"] == "tf_half_pixel_for_nn":
        raise b.unsupported(node, "tf_half_pixel_for_nn other than integer nearest upscaling")
    if runtime_sizes or runtime_scales:
        raise b.unsupported(node, f"{attrs['mode']} with {attrs['coord']} and sizes computed at run time")
    if in_dims is None or any(not isinstance(d, int) for d in in_dims):
        raise b.unsupported(node, f"{attrs['mode']} with {attrs['coord']} needs static input dims")
    if attrs["mode"] != "nearest" and not b.is_float(node.inputs[0]):
        raise b.unsupported(node, f"{attrs['mode']} interpolation of integers")
    resized = axes if axes is not None else list(range(rank))
    if sizes is not None:
        factors = [s / d if d else 1.0 for s, d in zip(sizes, in_dims)]
        out = [int(s) for s in sizes]
        if attrs["policy"] != "stretch":
            pick = min if attrs["policy"] == "not_larger" else max
            scale = pick(factors[a] for a in resized)
            factors = [scale if a in resized else 1.0 for a in range(rank)]
            out = [int(scale * in_dims[a] + 0.5) if a in resized else in_dims[a] for a in range(rank)]
    else:
        factors = [float(s) for s in scales]
        out = [int(f * d) for f, d in zip(factors, in_dims)]
    roi = None
    if attrs["coord"] == "tf_crop_and_resize":
        roi = b.const(node.inputs[roi_at]) if roi_at and b.has(node, roi_at) else None
        if roi is None:
            raise b.unsupported(node, "tf_crop_and_resize needs a constant roi")
        roi = [float(v) for v in roi.reshape(-1)]
        if axes is not None:
            full = [0.0] * rank + [1.0] * rank
            for i, a in enumerate(axes):
                full[a], full[rank + a] = roi[i], roi[len(axes) + i]
            roi = full
    name = b.unique(node.name or "resize")
    dtype = b.torch_dtype(node, b.dtype(node.inputs[0]))
    outside_any = None
    for axis in range(rank):
        pair = (roi[axis], roi[axis + rank]) if roi is not None else None
        if math.isclose(factors[axis], 1.0) and out[axis] == in_dims[axis] and (
                pair is None or (math.isclose(pair[0], 0.0) and math.isclose(pair[1], 1.0))):
            continue  # identity along this axis, as the reference skips it
        matrix, outside = axis_matrix(in_dims[axis], out[axis], factors[axis], attrs["mode"], attrs["coord"],
                                      attrs["nearest"], attrs["a"], attrs["exclude"], attrs["antialias"], pair)
        if attrs["mode"] == "nearest":
            index = b.buffer(f"{name}_index{axis}", torch.from_numpy(matrix.argmax(axis=1).astype(np.int64)))
            x = b.call(torch.index_select, x, axis, index)
        else:
            weights = b.buffer(f"{name}_weights{axis}", torch.from_numpy(matrix).to(dtype))
            x = b.call(apply_weights, x, weights, axis)
        if outside is not None and outside.any():
            shape = [1] * rank
            shape[axis] = out[axis]
            mask = outside.reshape(shape)
            outside_any = mask if outside_any is None else (outside_any | mask)
    if outside_any is not None:
        mask = b.buffer(f"{name}_outside", torch.from_numpy(outside_any))
        x = b.call(torch.where, mask, b.call(torch.full_like, x, attrs["extrapolation"]), x)
    return x


def _spatial(sizes: List[int]) -> List[int]:
    return sizes[2:]

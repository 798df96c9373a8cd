"""Resize and Upsample on channels-last tensors.

Nearest-neighbour Resize maps to RESIZE_NEAREST_NEIGHBOR when one of TF's index rules gives exactly
the source indices ONNX asks for (checked on the actual sizes), linear to RESIZE_BILINEAR when its
coordinate rule is ONNX's. Every other static case (cubic, antialias, other coordinate modes) is
separable: each spatial axis is a constant [out, in] matrix, computed by ONNX's own reference Resize
on an identity input, applied with two matmuls. With spatial sizes known only at run time, integer
scales map onto TF's resize kernels, whose index rule then equals ONNX's for every size.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits




def source_coordinates(mode: str, out: int, size: int, scale: float) -> np.ndarray:
    """ONNX's coordinate_transformation_mode: output index -> fractional source index."""
    x = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "align_corners":
        return x * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise ValueError(mode)


def onnx_nearest(mode: str, rounding: str, out: int, size: int, scale: float) -> np.ndarray:
    coordinates = source_coordinates(mode, out, size, scale)
    rounded = {
        "round_prefer_floor": np.ceil(coordinates - 0.5),
        "round_prefer_ceil": np.floor(coordinates + 0.5),
        "floor": np.floor(coordinates),
        "ceil": np.ceil(coordinates),
    }[rounding]
    return np.clip(rounded, 0, size - 1).astype(np.int32)


def tf_nearest(out: int, size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """The source indices TFLite's RESIZE_NEAREST_NEIGHBOR reads (in float32, as its kernel does)."""
    scale = np.float32((size - 1) / (out - 1) if align_corners and out > 1 else size / out)
    x = np.arange(out, dtype=np.float32)
    offset = np.float32(0.5) if half_pixel else np.float32(0.0)
    scaled = (x + offset) * scale
    index = np.round(scaled) if align_corners else np.floor(scaled)
    return np.clip(index, 0, size - 1).astype(np.int32)


def _nearest(ctx: EmitContext, x: tf.Tensor, sizes, out, scales) -> tf.Tensor | None:
    mode = ctx.text("coordinate_transformation_mode", "half_pixel")
    if ctx.op_type == "Upsample" or ctx.opset < 11:
        mode, rounding = "asymmetric", "floor"
        wanted = [onnx_nearest(mode, rounding, o, s, f) for o, s, f in zip(out, sizes, scales)]
        return tf.gather(tf.gather(x, wanted[0], axis=1), wanted[1], axis=2)
    if mode == "tf_crop_and_resize":
        return None
    rounding = ctx.text("nearest_mode", "round_prefer_floor")
    wanted = [onnx_nearest(mode, rounding, o, s, f) for o, s, f in zip(out, sizes, scales)]
    for align_corners, half_pixel in ((False, False), (False, True), (True, False)):
        if all(np.array_equal(w, tf_nearest(o, s, align_corners, half_pixel))
               for w, o, s in zip(wanted, out, sizes)):
            return tf.compat.v1.image.resize_nearest_neighbor(
                x, out, align_corners=align_corners, half_pixel_centers=half_pixel)
    return tf.gather(tf.gather(x, wanted[0], axis=1), wanted[1], axis=2)


def _linear(ctx: EmitContext, x: tf.Tensor, sizes, out, scales) -> tf.Tensor | None:
    """RESIZE_BILINEAR where its coordinate rule is ONNX's; None otherwise (the separable path)."""
    mode = ctx.text("coordinate_transformation_mode", "half_pixel")
    if ctx.op_type == "Upsample" or ctx.opset < 11:
        mode = "asymmetric"
    if any(abs(f - o / s) > 1e-6 for f, o, s in zip(scales, out, sizes)):
        return None
    if mode == "pytorch_half_pixel" and min(out) > 1:
        mode = "half_pixel"
    flags = {"half_pixel": (False, True), "align_corners": (True, False), "asymmetric": (False, False)}
    if mode not in flags:
        return None
    align_corners, half_pixel = flags[mode]
    return tf.compat.v1.image.resize_bilinear(x, out, align_corners=align_corners, half_pixel_centers=half_pixel)


def _full(values, axes, rank: int, fill) -> list:
    """Scales or sizes given for ``axes`` only, spread over every axis."""
    full = list(fill)
    for value, axis in zip(values, axes):
        full[layout.normalize_axis(int(axis), rank)] = value
    return full


def _targets(ctx: EmitContext, scales_index: int, sizes_index: int | None):
    """(scales, sizes) over all four axes; either may be None; sizes may hold run-time scalars."""
    rank = ctx.rank(0)
    axes = ctx.attr("axes")
    scales = ctx.static(scales_index) if ctx.has_input(scales_index) else None
    if ctx.has_input(scales_index) and scales is None:
        raise ctx.unsupported("scales not known at emit time (the output size depends on them)")
    if scales is not None and scales.size:
        scales = [float(v) for v in scales.reshape(-1)]
        return (_full(scales, axes, rank, [1.0] * rank) if axes is not None else scales), None
    if sizes_index is None or not ctx.has_input(sizes_index):
        raise ctx.unsupported("neither scales nor sizes")
    sizes = ctx.elements(sizes_index)
    dims = ctx.ir_dims(0)
    return None, (_full(sizes, axes, rank, dims) if axes is not None else sizes)


def _static_int(value) -> int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    static = tf.get_static_value(value)
    return None if static is None else int(static)


def resample_matrix(node, size: int, out: int, scale: float | None) -> np.ndarray:
    """The [out, size] matrix of ONNX's Resize along one axis (its reference implementation, exactly)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    attributes = {a.name: helper.get_attribute_value(ir.serde.serialize_attribute(a))
                  for a in node.attributes.values() if a.name not in ("axes", "scales")}
    if node.op_type == "Upsample" or "coordinate_transformation_mode" not in attributes and node.version is not None \
            and node.version < 11:
        attributes.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    identity = np.eye(size, dtype=np.float32).reshape(size, 1, size, 1)
    if scale is not None:
        feeds = {"x": identity, "scales": np.array([1, 1, scale, 1], np.float32)}
        inputs = ["x", "", "scales"]
    else:
        feeds = {"x": identity, "sizes": np.array([size, 1, out, 1], np.int64)}
        inputs = ["x", "", "", "sizes"]
    resize_node = helper.make_node("Resize", inputs, ["y"], **attributes)
    y = ReferenceEvaluator(resize_node).run(None, feeds)[0]  # [size, 1, out, 1]: column i is M[:, i]
    return np.asarray(y, np.float64).reshape(size, out).T


def _separable(ctx: EmitContext, x: tf.Tensor, sizes, out, scales) -> tf.Tensor:
    """Each spatial axis through its constant resampling matrix (two matmuls, exact for any mode)."""
    if ctx.text("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        raise ctx.unsupported("tf_crop_and_resize")
    rows = resample_matrix(ctx.node, sizes[0], out[0], scales[0] if scales else None).astype(np.float32)
    columns = resample_matrix(ctx.node, sizes[1], out[1], scales[1] if scales else None).astype(np.float32)
    channels = x.shape[3] if x.shape[3] is not None else tf.shape(x)[3]
    flat = tf.reshape(x, tf.stack([-1, sizes[0], sizes[1] * channels]))
    y = tf.matmul(rows, flat)  # N, outH, W*C
    y = tf.reshape(y, tf.stack([-1, sizes[1], channels]))
    y = tf.matmul(columns, y)  # N*outH, outW, C
    return tf.reshape(y, tf.stack([-1, out[0], out[1], channels]))


# TF's resize flags whose index rule is ONNX's for every size when the scale is an integer.
INTEGER_SCALE_FLAGS = {
    ("nearest", "asymmetric", "floor"): (False, False),
    ("nearest", "half_pixel", "round_prefer_floor"): (False, True),
    ("nearest", "tf_half_pixel_for_nn", "floor"): (False, True),
    ("linear", "half_pixel", None): (False, True),
    ("linear", "pytorch_half_pixel", None): (False, True),
    ("linear", "asymmetric", None): (False, False),
}


def _dynamic_resize(ctx: EmitContext, x: tf.Tensor, scales) -> tf.Tensor:
    """Spatial sizes known only at run time: integer scales on TF's kernels (exact, checked above)."""
    mode = ctx.text("mode", "nearest")
    transform = ctx.text("coordinate_transformation_mode", "half_pixel")
    rounding = ctx.text("nearest_mode", "round_prefer_floor") if mode == "nearest" else None
    key = (mode, transform, rounding)
    if scales is None or any(float(s) != int(s) or s < 1 for s in scales) or key not in INTEGER_SCALE_FLAGS:
        raise ctx.unsupported(f"{mode} resize ({transform}) of a tensor whose spatial size is known only "
                              "at run time, other than by an integer scale")
    align_corners, half_pixel = INTEGER_SCALE_FLAGS[key]
    size = tf.shape(x)[1:3] * np.array([int(s) for s in scales], np.int32)
    if mode == "nearest":
        return tf.compat.v1.image.resize_nearest_neighbor(x, size, align_corners=align_corners,
                                                          half_pixel_centers=half_pixel)
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=align_corners, half_pixel_centers=half_pixel)


def _resize(ctx: EmitContext, scales, sizes) -> None:
    if ctx.rank(0) != 4:
        raise ctx.unsupported(f"rank {ctx.rank(0)}")
    if ctx.text("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise ctx.unsupported("keep_aspect_ratio_policy")
    mode = ctx.text("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.unsupported(f"mode {mode}")
    if scales is not None and (scales[0] != 1 or scales[1] != 1):
        raise ctx.unsupported("scaling batch or channels")
    if sizes is not None:
        channels = ctx.ir_dims(0)[1]
        if _static_int(sizes[1]) is None or _static_int(sizes[1]) != _static_int(channels):
            raise ctx.unsupported("resizing channels (or a channel size known only at run time)")
    x = ctx.channels_last(0)
    in_sizes = x.shape.as_list()[1:3]
    spatial_scales = scales[2:] if scales is not None else None
    if any(s is None for s in in_sizes):
        ctx.set(_dynamic_resize(ctx, x, spatial_scales), layout.channels_last(4))
        return
    if spatial_scales is not None:
        out = [int(np.floor(s * f)) for s, f in zip(in_sizes, spatial_scales)]
        factors = spatial_scales
    else:
        out = [_static_int(v) for v in sizes[2:]]
        if any(o is None for o in out):
            raise ctx.unsupported("an output size known only at run time")
        factors = [o / s for o, s in zip(out, in_sizes)]
    y = None
    if not ctx.attr("antialias", 0) and mode == "nearest":
        y = _nearest(ctx, x, in_sizes, out, factors)
    elif not ctx.attr("antialias", 0) and mode == "linear":
        y = _linear(ctx, x, in_sizes, out, factors)
    if y is None:
        y = _separable(ctx, x, in_sizes, out, spatial_scales)
    ctx.set(y, layout.channels_last(4))


@emits("Resize", dtypes=FLOAT)
def resize(ctx: EmitContext) -> None:
    if ctx.opset < 11:  # Resize-10: (X, scales)
        scales = ctx.static(1)
        if scales is None:
            raise ctx.unsupported("scales not known at emit time (the output size depends on them)")
        _resize(ctx, [float(v) for v in scales], None)
        return
    _resize(ctx, *_targets(ctx, 2, 3))


@emits("Upsample", dtypes=FLOAT)
def upsample(ctx: EmitContext) -> None:
    """Upsample (opset 7-9): Resize with asymmetric coordinates and floor rounding."""
    scales = ctx.attr("scales")
    if scales is None:
        scales = ctx.static(1)
        if scales is None:
            raise ctx.unsupported("scales not known at emit time (the output size depends on them)")
    _resize(ctx, [float(v) for v in np.asarray(scales).reshape(-1)], None)

"""Resize and Pad on channels-last tensors.

Nearest-neighbour Resize maps to RESIZE_NEAREST_NEIGHBOR when one of TF's index rules gives exactly
the source indices ONNX asks for (checked on the actual sizes); otherwise it gathers rows and columns
with the ONNX indices, which is exact for every coordinate mode.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import emits


def _output_size(ctx: EmitContext, sizes: list[int]) -> tuple[list[int], list[float]]:
    """Output H, W and the scales ONNX uses in its coordinate transform."""
    if ctx.attr("axes") is not None or ctx.text("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise ctx.unsupported("axes / keep_aspect_ratio_policy")
    scales = ctx.const(2, "scales") if ctx.has_input(2) else None
    if scales is not None and scales.size:
        if scales[0] != 1 or scales[1] != 1:
            raise ctx.unsupported("scaling batch or channels")
        scale = [float(s) for s in scales[2:]]
        return [int(np.floor(s * f)) for s, f in zip(sizes, scale)], scale
    out = ctx.const(3, "sizes")
    if out[1] != ctx.ir_shape(0)[1]:
        raise ctx.unsupported("resizing channels")
    out = [int(v) for v in out[2:]]
    return out, [o / s for o, s in zip(out, sizes)]


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


def _nearest(ctx: EmitContext, x: tf.Tensor, sizes, out, scales) -> tf.Tensor:
    mode = ctx.text("coordinate_transformation_mode", "half_pixel")
    rounding = ctx.text("nearest_mode", "round_prefer_floor")
    wanted = [onnx_nearest(mode, rounding, o, s, f) for o, s, f in zip(out, sizes, scales)]
    for align_corners, half_pixel in ((False, False), (False, True), (True, False)):
        if all(np.array_equal(w, tf_nearest(o, s, align_corners, half_pixel))
               for w, o, s in zip(wanted, out, sizes)):
            return tf.compat.v1.image.resize_nearest_neighbor(
                x, out, align_corners=align_corners, half_pixel_centers=half_pixel)
    return tf.gather(tf.gather(x, wanted[0], axis=1), wanted[1], axis=2)


def _linear(ctx: EmitContext, x: tf.Tensor, sizes, out, scales) -> tf.Tensor:
    mode = ctx.text("coordinate_transformation_mode", "half_pixel")
    if any(abs(f - o / s) > 1e-6 for f, o, s in zip(scales, out, sizes)):
        raise ctx.unsupported("linear resize with a scale that is not output/input")
    if mode == "pytorch_half_pixel" and min(out) > 1:
        mode = "half_pixel"
    flags = {"half_pixel": (False, True), "align_corners": (True, False), "asymmetric": (False, False)}
    if mode not in flags:
        raise ctx.unsupported(f"linear resize with coordinate_transformation_mode {mode}")
    align_corners, half_pixel = flags[mode]
    return tf.compat.v1.image.resize_bilinear(x, out, align_corners=align_corners, half_pixel_centers=half_pixel)


@emits("Resize")
def resize(ctx: EmitContext) -> None:
    if ctx.rank(0) != 4:
        raise ctx.unsupported(f"rank {ctx.rank(0)}")
    if ctx.attr("antialias", 0):
        raise ctx.unsupported("antialias")
    mode = ctx.text("mode", "nearest")
    x = ctx.channels_last(0)
    sizes = x.shape.as_list()[1:3]
    if any(s is None for s in sizes):
        raise ctx.unsupported("unknown spatial size")
    out, scales = _output_size(ctx, sizes)
    if mode == "nearest":
        y = _nearest(ctx, x, sizes, out, scales)
    elif mode == "linear":
        y = _linear(ctx, x, sizes, out, scales)
    else:
        raise ctx.unsupported(f"mode {mode}")
    ctx.set(y, layout.channels_last(4))


@emits("Pad")
def pad(ctx: EmitContext) -> None:
    held = ctx.held(0)
    rank = held.rank
    pads = ctx.attr("pads")
    if pads is None:
        pads = ctx.const(1, "pads").tolist()
    pads = [int(p) for p in pads]
    axes = ctx.const(3, "axes").tolist() if ctx.has_input(3) else list(range(len(pads) // 2))
    if any(p < 0 for p in pads):
        raise ctx.unsupported("negative pads")
    per_axis = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        per_axis[layout.normalize_axis(int(axis), rank)] = [pads[i], pads[i + len(axes)]]
    paddings = [per_axis[a] for a in held.perm]
    mode = ctx.text("mode", "constant")
    x = ctx.tensor(0)
    if mode == "constant":
        value = ctx.attr("value", 0.0)
        if ctx.has_input(2):
            value = ctx.const(2, "constant_value").reshape(-1)[0]
        y = tf.pad(x, paddings, constant_values=np.asarray(value, x.dtype.as_numpy_dtype))
    elif mode == "reflect":
        y = tf.pad(x, paddings, mode="REFLECT")
    elif mode == "edge":
        y = _edge_pad(ctx, x, paddings)
    else:
        raise ctx.unsupported(f"mode {mode}")
    ctx.set(y, held.perm)


def _edge_pad(ctx: EmitContext, x: tf.Tensor, paddings) -> tf.Tensor:
    """Edge padding repeats border values: SYMMETRIC for one pixel, else gather clipped indices."""
    if all(b <= 1 and e <= 1 for b, e in paddings):
        return tf.pad(x, paddings, mode="SYMMETRIC")
    shape = x.shape.as_list()
    for axis, (begin, end) in enumerate(paddings):
        if begin or end:
            if shape[axis] is None:
                raise ctx.unsupported("edge padding of a dim of unknown size")
            indices = np.clip(np.arange(-begin, shape[axis] + end), 0, shape[axis] - 1).astype(np.int32)
            x = tf.gather(x, indices, axis=axis)
    return x

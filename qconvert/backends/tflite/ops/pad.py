"""Pad in every mode (constant, reflect, edge, wrap), its pads known at emit time or computed at run time.

Pads describe IR axes; for a tensor held in another arrangement their rows are reordered like the
tensor (a GATHER on the pads when they are a run-time vector), so the data is padded where it is held.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import MOVABLE, emits


def _paddings(ctx: EmitContext, rank: int, perm: layout.Perm):
    """[rank, 2] (begin, end) per held axis: NumPy when known, else an int32 tensor."""
    pads = ctx.attr("pads")
    pads = np.asarray(pads, np.int64) if pads is not None else ctx.vector(1)
    axes = ctx.static(3) if ctx.has_input(3) else None
    if ctx.has_input(3) and axes is None:
        raise ctx.unsupported("pad axes not known at emit time")
    axes = list(range(rank)) if axes is None else [layout.normalize_axis(int(a), rank) for a in axes]
    count = len(axes)
    if isinstance(pads, np.ndarray):
        per_axis = np.zeros((rank, 2), np.int64)
        for i, axis in enumerate(axes):
            per_axis[axis] = [pads[i], pads[i + count]]
        return per_axis[list(perm)].astype(np.int32)
    pairs = tf.stack([pads[:count], pads[count:]], axis=1)  # [count, 2]
    # Row r of the result is IR axis perm[r]: its pair, or zeros when the axis is not padded.
    source = [axes.index(a) if a in axes else count for a in perm]
    return tf.gather(tf.concat([pairs, tf.zeros([1, 2], tf.int32)], 0), source)


def _wrapped_or_edge(x: tf.Tensor, paddings, wrap: bool) -> tf.Tensor:
    """Edge (clamped) or wrap (modular) indices gathered along each padded axis."""
    for axis in range(len(x.shape)):
        begin, end = paddings[axis][0], paddings[axis][1]
        if isinstance(begin, (int, np.integer)) and begin == 0 and end == 0:
            continue
        size = x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]
        index = tf.range(-begin, size + end)
        index = tf.math.floormod(index, size) if wrap else tf.clip_by_value(index, 0, size - 1)
        x = tf.gather(x, index, axis=axis)
    return x


@emits("Pad", dtypes=MOVABLE)
def pad(ctx: EmitContext) -> None:
    held = ctx.held(0)
    paddings = _paddings(ctx, held.rank, held.perm)
    static = isinstance(paddings, np.ndarray)
    if static and (paddings < 0).any():
        # Negative pads crop: a slice after padding the positive ones.
        crop = np.minimum(paddings, 0)
        paddings = np.maximum(paddings, 0)
    else:
        crop = None
    mode = ctx.text("mode", "constant")
    x = ctx.tensor(0)
    if mode == "constant":
        value = ctx.attr("value", 0.0)
        if ctx.has_input(2):
            constant = ctx.static(2)
            value = (np.asarray(constant).reshape(-1)[0] if constant is not None
                     else tf.reshape(tf.cast(ctx.plain(2), x.dtype), [-1])[0])
        value = value if isinstance(value, tf.Tensor) else np.asarray(value, x.dtype.as_numpy_dtype)
        y = tf.pad(x, paddings, constant_values=value)
    elif mode == "reflect":
        y = tf.pad(x, paddings, mode="REFLECT")
    elif mode in ("edge", "wrap"):
        if static and mode == "edge" and (paddings <= 1).all():
            y = tf.pad(x, paddings, mode="SYMMETRIC")  # one repeated pixel is its mirror
        else:
            rows = [[paddings[i][0], paddings[i][1]] for i in range(held.rank)] if static else \
                [[paddings[i, 0], paddings[i, 1]] for i in range(held.rank)]
            y = _wrapped_or_edge(x, rows, wrap=mode == "wrap")
    else:
        raise ctx.unsupported(f"mode {mode}")
    if crop is not None:
        size = y.shape.as_list()
        begin = [-int(b) for b in crop[:, 0]]
        end = [(s + int(e)) if s is not None else (int(e) if e else 0) for s, e in zip(size, crop[:, 1])]
        mask = sum(1 << i for i, e in enumerate(crop[:, 1]) if e == 0)
        y = tf.strided_slice(y, begin, end, begin_mask=0, end_mask=mask)
    ctx.set(y, held.perm)

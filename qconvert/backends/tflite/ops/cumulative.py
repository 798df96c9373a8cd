"""CumProd: TFLite has CUMSUM but no cumulative product, so it is a log-depth scan of MULs (Hillis-Steele):
after the step with offset d = 1, 2, 4, ... each position holds the product of the 2d positions ending at it.
Every step multiplies the running products by themselves shifted by d along the axis, the gap filled
with ones (SLICE + PADV2), so the axis length must be known when emitting."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import NUMERIC, emits


def shifted(x: tf.Tensor, offset: int, axis: int, length: int) -> tf.Tensor:
    """x moved ``offset`` positions along ``axis`` (towards the end), ones filling the start."""
    rank = len(x.shape)
    size = [-1] * rank
    size[axis] = length - offset
    paddings = [[0, 0]] * rank
    paddings[axis] = [offset, 0]
    return tf.pad(tf.slice(x, [0] * rank, size), paddings, constant_values=np.ones((), x.dtype.as_numpy_dtype))


def cumulative_product(x: tf.Tensor, axis: int, exclusive: bool, reverse: bool) -> tf.Tensor:
    length = x.shape[axis]
    if reverse:
        x = tf.reverse(x, [axis])
    y, offset = x, 1
    while offset < length:
        y = y * shifted(y, offset, axis, length)
        offset *= 2
    if exclusive and length:
        y = shifted(y, 1, axis, length)
    return tf.reverse(y, [axis]) if reverse else y


@emits("CumProd", dtypes=NUMERIC)
def cumprod(ctx: EmitContext) -> None:
    """A constant axis gives one scan; an axis known only at run time gives one scan per axis, and SELECT
    keeps the one the axis names (every axis length must then be known)."""
    held = ctx.held(0)
    x = ctx.tensor(0)
    exclusive, reverse = bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0))
    axis = ctx.static(1)
    axes = list(range(held.rank)) if axis is None else [
        layout.normalize_axis(int(np.asarray(axis).reshape(-1)[0]), held.rank)]
    for ir_axis in axes:
        if x.shape[layout.held_axis(held.perm, ir_axis)] is None:
            raise ctx.unsupported(f"axis {ir_axis} of unknown length (the scan's steps depend on it)")
    scans = [cumulative_product(x, layout.held_axis(held.perm, a), exclusive, reverse) for a in axes]
    if axis is None:
        chosen = tf.reshape(tf.cast(ctx.plain(1), tf.int32), [])
        chosen = tf.where(chosen < 0, chosen + held.rank, chosen)
        y = scans[-1]
        for a in reversed(axes[:-1]):
            y = tf.where(tf.equal(chosen, a), scans[a], y)
        scans = [y]
    ctx.set(scans[0], held.perm)

"""BatchNormalization (the one the cleanup could not fold) and LayerNormalization."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import emits


def _along(perm: layout.Perm, axis: int, vector: np.ndarray) -> np.ndarray:
    """A per-channel vector shaped to broadcast along IR axis ``axis`` of a tensor held in ``perm``."""
    shape = [1] * len(perm)
    shape[layout.held_axis(perm, axis)] = vector.size
    return vector.astype(np.float32).reshape(shape)


@emits("BatchNormalization")
def batch_norm(ctx: EmitContext) -> None:
    if ctx.output_count > 1 and any(v is not None and v.uses() for v in ctx.node.outputs[1:]):
        raise ctx.unsupported("training-mode outputs")
    scale, bias, mean, var = (ctx.const(i, name).astype(np.float64)
                              for i, name in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    epsilon = float(ctx.attr("epsilon", 1e-5))
    multiplier = scale / np.sqrt(var + epsilon)
    offset = bias - mean * multiplier
    perm = ctx.perm(0)
    if ctx.rank(0) == 4:
        perm = layout.channels_last(4)  # a MUL/ADD on NHWC fuses into the producing conv
    x = ctx.tensor(0, perm)
    axis = 1 if ctx.rank(0) > 1 else 0
    ctx.set(x * _along(perm, axis, multiplier) + _along(perm, axis, offset), perm)


@emits("LayerNormalization")
def layer_norm(ctx: EmitContext) -> None:
    if ctx.output_count > 1 and any(v is not None and v.uses() for v in ctx.node.outputs[1:]):
        raise ctx.unsupported("mean/inv_std_dev outputs")
    rank = ctx.rank(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", -1)), rank)
    epsilon = np.float32(ctx.attr("epsilon", 1e-5))
    perm = ctx.perm(0)
    normalized = list(range(axis, rank))
    axes = sorted(layout.held_axis(perm, a) for a in normalized)
    x = ctx.tensor(0)
    mean = tf.reduce_mean(x, axes, keepdims=True)
    centered = x - mean
    variance = tf.reduce_mean(tf.square(centered), axes, keepdims=True)
    y = centered * tf.math.rsqrt(variance + epsilon)

    def broadcast(array: np.ndarray) -> np.ndarray:
        full = array.astype(np.float32).reshape((1,) * (rank - array.ndim) + array.shape)
        return full.transpose(perm)

    y = y * broadcast(ctx.const(1, "scale"))
    if ctx.has_input(2):
        y = y + broadcast(ctx.const(2, "bias"))
    ctx.set(y, perm)


@emits("InstanceNormalization")
def instance_norm(ctx: EmitContext) -> None:
    # Statistics over the spatial axes wherever they are held: a GroupNorm exported as
    # Reshape -> InstanceNormalization -> Reshape then needs no transposes of its own.
    rank, perm = ctx.rank(0), ctx.perm(0)
    x = ctx.tensor(0)
    axes = sorted(layout.held_axis(perm, a) for a in range(2, rank))
    mean = tf.reduce_mean(x, axes, keepdims=True)
    centered = x - mean
    variance = tf.reduce_mean(tf.square(centered), axes, keepdims=True)
    y = centered * tf.math.rsqrt(variance + np.float32(ctx.attr("epsilon", 1e-5)))
    ctx.set(y * _along(perm, 1, ctx.const(1, "scale")) + _along(perm, 1, ctx.const(2, "bias")), perm)

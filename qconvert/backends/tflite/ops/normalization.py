"""BatchNormalization (the one the cleanup could not fold) and LayerNormalization."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned
from qconvert.backends.tflite.registry import FLOAT, emits


def _along(perm: layout.Perm, axis: int, vector):
    """A per-channel vector (NumPy, or a run-time tensor) shaped to broadcast along IR axis ``axis`` of a
    tensor held in ``perm``."""
    shape = [1] * len(perm)
    shape[layout.held_axis(perm, axis)] = -1
    if isinstance(vector, np.ndarray):
        return vector.astype(np.float32).reshape(shape)
    return tf.reshape(vector, shape)


def _input(ctx: EmitContext, index: int):
    """A parameter input: NumPy (float64 for folding) when known, else its run-time tensor."""
    static = ctx.static(index)
    return static.astype(np.float64) if static is not None else ctx.plain(index)


@emits("BatchNormalization", dtypes=FLOAT)
def batch_norm(ctx: EmitContext) -> None:
    if ctx.output_count > 1 and any(v is not None and (v.uses() or v.is_graph_output()) for v in ctx.node.outputs[1:]):
        raise ctx.unsupported("training-mode outputs")
    if ctx.attr("training_mode", 0):
        raise ctx.unsupported("training mode")
    scale, bias, mean, var = (_input(ctx, i) for i in range(1, 5))
    epsilon = float(ctx.attr("epsilon", 1e-5))
    if all(isinstance(v, np.ndarray) for v in (scale, bias, mean, var)):
        multiplier = scale / np.sqrt(var + epsilon)
        offset = bias - mean * multiplier
    else:
        scale, bias, mean, var = (tf.cast(v, tf.float32) for v in (scale, bias, mean, var))
        multiplier = scale * tf.math.rsqrt(var + np.float32(epsilon))
        offset = bias - mean * multiplier
    perm = ctx.perm(0)
    if ctx.rank(0) == 4:
        perm = layout.channels_last(4)  # a MUL/ADD on NHWC fuses into the producing conv
    x = ctx.tensor(0, perm)
    axis = 1 if ctx.rank(0) > 1 else 0
    ctx.set(x * _along(perm, axis, multiplier) + _along(perm, axis, offset), perm)


@emits("LayerNormalization", dtypes=FLOAT)
def layer_norm(ctx: EmitContext) -> None:
    if ctx.output_count > 1 and any(v is not None and (v.uses() or v.is_graph_output()) for v in ctx.node.outputs[1:]):
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

    (_, scale), _ = aligned(ctx, [0, 1])  # the scale (and bias) arranged like x, constant or not
    y = y * scale
    if ctx.has_input(2):
        (_, bias), _ = aligned(ctx, [0, 2])
        y = y + bias
    ctx.set(y, perm)


@emits("InstanceNormalization", dtypes=FLOAT)
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
    ctx.set(y * _along(perm, 1, _param(ctx, 1)) + _along(perm, 1, _param(ctx, 2)), perm)


def _param(ctx: EmitContext, index: int):
    static = ctx.static(index)
    return static.astype(np.float32) if static is not None else tf.cast(ctx.plain(index), tf.float32)


def _moments(x: tf.Tensor, axes) -> tuple[tf.Tensor, tf.Tensor]:
    mean = tf.reduce_mean(x, axes, keepdims=True)
    centered = x - mean
    return centered, tf.reduce_mean(tf.square(centered), axes, keepdims=True)


@emits("GroupNormalization", dtypes=FLOAT)
def group_norm(ctx: EmitContext) -> None:
    """Channels split into groups where they are held (the channel axis becomes [G, C/G]): no transpose."""
    rank, perm = ctx.rank(0), ctx.perm(0)
    groups = int(ctx.attr("num_groups"))
    channels = ctx.ir_shape(0)[1]
    if channels is None:
        raise ctx.unsupported("unknown channel count")
    x = ctx.tensor(0)
    position = layout.held_axis(perm, 1)
    dims = ctx.ir_dims(0)
    held_dims = [dims[a] for a in perm]
    grouped_dims = held_dims[:position] + [groups, channels // groups] + held_dims[position + 1:]
    grouped = tf.reshape(x, tf.stack(grouped_dims) if not all(isinstance(d, int) for d in grouped_dims)
                         else grouped_dims)
    # Statistics over the group's channels and every spatial axis.
    axes = [i for i in range(rank + 1) if i not in (0, position)]
    centered, variance = _moments(grouped, axes)
    y = centered * tf.math.rsqrt(variance + np.float32(ctx.attr("epsilon", 1e-5)))
    y = tf.reshape(y, tf.shape(x)) if not x.shape.is_fully_defined() else tf.reshape(y, x.shape)
    scale, bias = _param(ctx, 1), _param(ctx, 2)
    if ctx.opset < 21 and groups != channels:  # GroupNormalization-18: one scale and bias per group
        scale, bias = (np.repeat(v, channels // groups) if isinstance(v, np.ndarray)
                       else tf.repeat(v, channels // groups) for v in (scale, bias))
    ctx.set(y * _along(perm, 1, scale) + _along(perm, 1, bias), perm)


@emits("RMSNormalization", dtypes=FLOAT)
def rms_norm(ctx: EmitContext) -> None:
    rank, perm = ctx.rank(0), ctx.perm(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", -1)), rank)
    axes = sorted(layout.held_axis(perm, a) for a in range(axis, rank))
    x = ctx.tensor(0)
    y = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axes, keepdims=True) + np.float32(ctx.attr("epsilon", 1e-5)))
    (_, scale), _ = aligned(ctx, [0, 1])
    ctx.set(y * scale, perm)


@emits("LpNormalization", dtypes=FLOAT)
def lp_norm(ctx: EmitContext) -> None:
    rank, perm = ctx.rank(0), ctx.perm(0)
    position = layout.held_axis(perm, layout.normalize_axis(int(ctx.attr("axis", -1)), rank))
    p = int(ctx.attr("p", 2))
    x = ctx.tensor(0)
    if p == 1:
        norm = tf.reduce_sum(tf.abs(x), position, keepdims=True)
    elif p == 2:
        norm = tf.sqrt(tf.reduce_sum(tf.square(x), position, keepdims=True))
    else:
        raise ctx.unsupported(f"p = {p}")
    ctx.set(x / norm, perm)


@emits("MeanVarianceNormalization", dtypes=FLOAT)
def mean_variance_norm(ctx: EmitContext) -> None:
    rank, perm = ctx.rank(0), ctx.perm(0)
    axes = [layout.normalize_axis(int(a), rank) for a in ctx.attr("axes", [0, 2, 3])]
    x = ctx.tensor(0)
    centered, variance = _moments(x, sorted(layout.held_axis(perm, a) for a in axes))
    ctx.set(centered / (tf.sqrt(variance) + np.float32(1e-9)), perm)


@emits("LRN", dtypes=FLOAT)
def lrn(ctx: EmitContext) -> None:
    """x / (bias + alpha/size * sum of squares over the channel window)^beta, window summed as slices."""
    rank, perm = ctx.rank(0), ctx.perm(0)
    size = int(ctx.attr("size"))
    alpha, beta, bias = float(ctx.attr("alpha", 1e-4)), float(ctx.attr("beta", 0.75)), float(ctx.attr("bias", 1.0))
    channels = ctx.ir_shape(0)[1]
    if channels is None:
        raise ctx.unsupported("unknown channel count")
    position = layout.held_axis(perm, 1)
    x = ctx.tensor(0)
    low, high = (size - 1) // 2, size - 1 - (size - 1) // 2
    paddings = [[0, 0]] * rank
    paddings[position] = [low, high]
    squares = tf.pad(tf.square(x), paddings)
    total = None
    for offset in range(size):
        part = tf.gather(squares, np.arange(offset, offset + channels, dtype=np.int32), axis=position)
        total = part if total is None else total + part
    ctx.set(x / tf.pow(np.float32(bias) + np.float32(alpha / size) * total, np.float32(beta)), perm)

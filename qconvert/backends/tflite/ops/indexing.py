"""Index-driven ops on the IR's arrangement: GatherElements/ND, ScatterND/Elements, OneHot, TopK, CumSum,
Trilu, Compress, ReverseSequence. Indices are made non-negative first (TFLite's kernels take none)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import MOVABLE, NUMERIC, emits


def _indices(ctx: EmitContext, index: int, length) -> tf.Tensor:
    indices = tf.cast(ctx.plain(index), tf.int32)
    return tf.where(indices < 0, indices + length, indices)


def _coordinates(indices: tf.Tensor, axis: int) -> tf.Tensor:
    """Full GATHER_ND coordinates for an index tensor along ``axis`` (the other axes' own positions)."""
    shape = tf.shape(indices)
    rank = len(indices.shape)
    grids = []
    for a in range(rank):
        if a == axis:
            grids.append(indices)
        else:
            view = [1] * rank
            view[a] = -1
            grids.append(tf.broadcast_to(tf.reshape(tf.range(shape[a]), view), shape))
    return tf.stack(grids, axis=-1)


@emits("GatherElements", dtypes=MOVABLE)
def gather_elements(ctx: EmitContext) -> None:
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), ctx.rank(0))
    indices = _indices(ctx, 1, ctx.ir_dims(0)[axis])
    ctx.set(tf.gather_nd(ctx.plain(0), _coordinates(indices, axis)))


@emits("GatherND", dtypes=MOVABLE)
def gather_nd(ctx: EmitContext) -> None:
    batch_dims = int(ctx.attr("batch_dims", 0))
    x = ctx.plain(0)
    indices = tf.cast(ctx.plain(1), tf.int32)
    depth = ctx.ir_shape(1)[-1]
    if depth is None:
        raise ctx.unsupported("index depth of unknown size")
    dims = ctx.ir_dims(0)
    limits = tf.stack([tf.cast(d, tf.int32) for d in dims[batch_dims:batch_dims + depth]])
    indices = tf.where(indices < 0, indices + limits, indices)
    if batch_dims:
        # Prepend each batch position's own coordinates (GATHER_ND has no batch_dims).
        index_rank = ctx.rank(1)
        shape = tf.shape(indices)
        grids = []
        for a in range(batch_dims):
            view = [1] * index_rank
            view[a] = -1
            grids.append(tf.broadcast_to(tf.reshape(tf.range(shape[a]), view), tf.concat([shape[:-1], [1]], 0)))
        indices = tf.concat([*grids, indices], axis=-1)
    ctx.set(tf.gather_nd(x, indices))


def _scatter(ctx: EmitContext, data: tf.Tensor, indices: tf.Tensor, updates: tf.Tensor) -> tf.Tensor:
    reduction = ctx.text("reduction", "none")
    shape = tf.shape(data)
    if reduction == "add":
        return data + tf.scatter_nd(indices, updates, shape)
    if reduction != "none":
        raise ctx.unsupported(f"reduction {reduction}")
    # Indices are unique (ONNX requires it): SCATTER_ND places the updates, a mask picks them.
    hit = tf.scatter_nd(indices, tf.ones_like(updates, tf.int32), shape)
    return tf.where(hit > 0, tf.scatter_nd(indices, updates, shape), data)


@emits("ScatterND", dtypes=NUMERIC)
def scatter_nd(ctx: EmitContext) -> None:
    data = ctx.plain(0)
    depth = ctx.ir_shape(1)[-1]
    if depth is None:
        raise ctx.unsupported("index depth of unknown size")
    limits = tf.stack([tf.cast(d, tf.int32) for d in ctx.ir_dims(0)[:depth]])
    indices = tf.cast(ctx.plain(1), tf.int32)
    indices = tf.where(indices < 0, indices + limits, indices)
    ctx.set(_scatter(ctx, data, indices, ctx.plain(2)))


@emits("ScatterElements", "Scatter", dtypes=NUMERIC)
def scatter_elements(ctx: EmitContext) -> None:
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), ctx.rank(0))
    indices = _indices(ctx, 1, ctx.ir_dims(0)[axis])
    ctx.set(_scatter(ctx, ctx.plain(0), _coordinates(indices, axis), ctx.plain(2)))


@emits("OneHot", dtypes=NUMERIC)
def one_hot(ctx: EmitContext) -> None:
    depth = ctx.static(1)
    if depth is None:
        raise ctx.unsupported("depth not known at emit time (the output size depends on it)")
    depth = int(np.asarray(depth).reshape(-1)[0])
    values = ctx.plain(2)
    rank = ctx.rank(0) + 1
    axis = layout.normalize_axis(int(ctx.attr("axis", -1)), rank)
    indices = tf.cast(ctx.plain(0), tf.int32)  # float indices are truncated, as ONNX casts them
    indices = tf.where(indices < 0, indices + depth, indices)
    ctx.set(tf.one_hot(indices, depth, on_value=values[1], off_value=values[0], axis=axis, dtype=values.dtype))


@emits("TopK", dtypes=NUMERIC)
def top_k(ctx: EmitContext) -> None:
    rank = ctx.rank(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", -1)), rank)
    k = ctx.static(1)
    k = int(np.asarray(k).reshape(-1)[0]) if k is not None else tf.reshape(tf.cast(ctx.plain(1), tf.int32), [])
    x = ctx.plain(0)
    order = list(range(rank))
    order[axis], order[-1] = order[-1], order[axis]
    moved = tf.transpose(x, order) if axis != rank - 1 else x
    largest = bool(ctx.attr("largest", 1))
    if not largest and x.dtype.is_integer:
        raise ctx.unsupported("smallest integers (negation would overflow)")
    values, indices = tf.math.top_k(moved if largest else -moved, k)
    values = values if largest else -values
    if axis != rank - 1:
        values, indices = tf.transpose(values, order), tf.transpose(indices, order)
    ctx.set(values, index=0)
    ctx.set(indices, index=1)


@emits("CumSum", dtypes=NUMERIC)
def cumsum(ctx: EmitContext) -> None:
    axis = ctx.static(1)
    if axis is None:
        raise ctx.unsupported("axis not known at emit time")
    held = ctx.held(0)
    axis = layout.normalize_axis(int(np.asarray(axis).reshape(-1)[0]), held.rank)
    y = tf.cumsum(ctx.tensor(0), layout.held_axis(held.perm, axis), exclusive=bool(ctx.attr("exclusive", 0)),
                  reverse=bool(ctx.attr("reverse", 0)))
    ctx.set(y, held.perm)


@emits("Trilu", dtypes=MOVABLE)
def trilu(ctx: EmitContext) -> None:
    """Keep the upper or lower triangle of the last two axes (from diagonal k) with a SELECT."""
    k = ctx.static(1) if ctx.has_input(1) else np.zeros(())
    k = int(np.asarray(k).reshape(-1)[0]) if k is not None else tf.reshape(tf.cast(ctx.plain(1), tf.int32), [])
    x = ctx.plain(0)
    rows, columns = ctx.ir_dims(0)[-2:]
    offset = tf.range(columns)[None, :] - tf.range(rows)[:, None]
    keep = offset >= k if ctx.attr("upper", 1) else offset <= k
    ctx.set(tf.where(keep, x, tf.zeros_like(x)))


@emits("Compress", dtypes=MOVABLE)
def compress(ctx: EmitContext) -> None:
    condition = ctx.static(1)
    axis = ctx.attr("axis")
    x = ctx.plain(0)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    axis = layout.normalize_axis(int(axis), len(x.shape))
    if condition is not None:
        kept = np.nonzero(np.asarray(condition).astype(bool))[0].astype(np.int32)
    else:
        kept = tf.reshape(tf.cast(tf.where(tf.cast(ctx.plain(1), tf.bool)), tf.int32), [-1])
    ctx.set(tf.gather(x, kept, axis=axis))


@emits("ReverseSequence", dtypes=MOVABLE)
def reverse_sequence(ctx: EmitContext) -> None:
    batch_axis, time_axis = int(ctx.attr("batch_axis", 1)), int(ctx.attr("time_axis", 0))
    x = ctx.plain(0)
    lengths = tf.cast(ctx.plain(1), tf.int32)
    shape = tf.shape(x)
    rank = ctx.rank(0)
    times = tf.range(shape[time_axis])
    # Per (time, batch): the source time step, reversed within each sequence's length.
    view_t, view_b = [1] * rank, [1] * rank
    view_t[time_axis], view_b[batch_axis] = -1, -1
    t = tf.reshape(times, view_t)
    n = tf.reshape(lengths, view_b)
    source = tf.broadcast_to(tf.where(t < n, n - 1 - t, t), shape)
    ctx.set(tf.gather_nd(x, _coordinates(source, time_axis)))

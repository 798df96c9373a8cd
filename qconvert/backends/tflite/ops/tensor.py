"""Concat, Split, Slice, Gather, Tile, DepthToSpace/SpaceToDepth with their axes in the held layout."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, narrow
from qconvert.backends.tflite.ops.common import aligned
from qconvert.backends.tflite.ops.shape import held_vector
from qconvert.backends.tflite.registry import BYTES, MOVABLE, emits

INT32_MAX = 2**31 - 1


@emits("Concat", dtypes=BYTES)
def concat(ctx: EmitContext) -> None:
    indices = [i for i in range(len(ctx.node.inputs)) if ctx.has_input(i)]
    # Empty inputs (shape arithmetic leftovers) add nothing.
    indices = [i for i in indices if not (ctx.held(i).is_const and ctx.held(i).tensor.size == 0)] or indices[:1]
    values, perm = aligned(ctx, indices)
    axis = layout.normalize_axis(int(ctx.attr("axis")), len(perm))
    dtype = next((v.dtype for v in values if not isinstance(v, np.ndarray)), None)
    if dtype is not None:
        values = [v.astype(dtype.as_numpy_dtype) if isinstance(v, np.ndarray) else v for v in values]
    ctx.set(tf.concat(values, layout.held_axis(perm, axis)) if len(values) > 1 else tf.identity(values[0]), perm)


@emits("Split", dtypes=BYTES)
def split(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), held.rank)
    sizes = ctx.attr("split")
    if sizes is None and ctx.has_input(1):
        sizes = ctx.vector(1)
        if not isinstance(sizes, np.ndarray):
            _split_at_run_time(ctx, sizes, axis)
            return
        sizes = sizes.tolist()
    parts = ctx.output_count
    if sizes is None:
        length = ctx.ir_shape(0)[axis]
        if length is None:
            raise ctx.unsupported("split of a dim of unknown size")
        chunk = -(-length // parts)  # ONNX: equal chunks, the last one smaller
        sizes = [min(chunk, length - i * chunk) for i in range(parts)]
    outputs = tf.split(ctx.tensor(0), [int(s) for s in sizes], axis=layout.held_axis(held.perm, axis))
    for index, output in enumerate(outputs):
        ctx.set(output, held.perm, index)


def _split_at_run_time(ctx: EmitContext, sizes: tf.Tensor, axis: int) -> None:
    """Sizes known only at run time: one STRIDED_SLICE per output between running offsets."""
    held = ctx.held(0)
    position = layout.held_axis(held.perm, axis)
    x = ctx.tensor(0)
    ends = tf.cumsum(sizes)
    starts = ends - sizes
    mask = ((1 << held.rank) - 1) & ~(1 << position)
    for index in range(ctx.output_count):
        begin = tf.one_hot(position, held.rank, on_value=starts[index], off_value=0, dtype=tf.int32)
        end = tf.one_hot(position, held.rank, on_value=ends[index], off_value=0, dtype=tf.int32)
        y = tf.strided_slice(x, begin, end, tf.ones([held.rank], tf.int32), begin_mask=mask, end_mask=mask)
        ctx.set(y, held.perm, index)


def _slice_at_run_time(ctx: EmitContext) -> None:
    """Starts, ends or steps computed at run time: begin/end/stride vectors stacked in the held order."""
    held = ctx.held(0)
    rank = held.rank
    starts, ends = ctx.vector(1), ctx.vector(2)
    count = int(starts.shape[0])
    axes = ctx.static(3) if ctx.has_input(3) else np.arange(count)
    if axes is None:
        raise ctx.unsupported("slice axes computed at run time")
    steps = ctx.vector(4) if ctx.has_input(4) else np.ones(count, np.int32)
    where = {layout.held_axis(held.perm, layout.normalize_axis(int(a), rank)): i for i, a in enumerate(axes)}
    begin, end, stride, mask = [], [], [], 0
    for position in range(rank):
        i = where.get(position)
        if i is None:
            mask |= 1 << position
            begin.append(0), end.append(0), stride.append(1)
        else:
            begin.append(starts[i]), end.append(ends[i]), stride.append(steps[i])
    vectors = [tf.stack([tf.cast(v, tf.int32) for v in values]) for values in (begin, end, stride)]
    ctx.set(tf.strided_slice(ctx.tensor(0), *vectors, begin_mask=mask, end_mask=mask), held.perm)


@emits("Slice", dtypes=BYTES)
def slice_op(ctx: EmitContext) -> None:
    held = ctx.held(0)
    rank = held.rank
    if rank > 5:
        raise ctx.unsupported(f"rank {rank} (STRIDED_SLICE takes at most 5 dims)")
    if ctx.opset < 10:  # attributes
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes, steps = list(ctx.attr("axes", range(len(starts)))), [1] * len(starts)
    elif any(ctx.has_input(i) and ctx.static(i) is None for i in (1, 2, 3, 4)):
        _slice_at_run_time(ctx)
        return
    else:
        starts = ctx.static(1).astype(np.int64).tolist()
        ends = ctx.static(2).astype(np.int64).tolist()
        axes = ctx.static(3).tolist() if ctx.has_input(3) else list(range(len(starts)))
        steps = ctx.static(4).tolist() if ctx.has_input(4) else [1] * len(starts)
    begin, end, stride = [0] * rank, [0] * rank, [1] * rank
    begin_mask = end_mask = 0
    for position in range(rank):
        begin_mask |= 1 << position
        end_mask |= 1 << position
    for start, stop, axis, step in zip(starts, ends, axes, steps):
        position = layout.held_axis(held.perm, layout.normalize_axis(int(axis), rank))
        stride[position] = int(step)
        # Ends past the dim (INT64_MAX, or INT64_MIN going backwards) mean "to the edge": a mask.
        if -INT32_MAX < start < INT32_MAX:
            begin[position] = int(start)
            begin_mask &= ~(1 << position)
        if -INT32_MAX < stop < INT32_MAX:
            end[position] = int(stop)
            end_mask &= ~(1 << position)
    y = tf.strided_slice(ctx.tensor(0), begin, end, stride, begin_mask=begin_mask, end_mask=end_mask)
    ctx.set(y, held.perm)


@emits("Gather", dtypes=BYTES)
def gather(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), held.rank)
    indices_held = ctx.held(1)
    if indices_held.is_const:
        indices = narrow(indices_held.tensor)
        length = ctx.ir_shape(0)[axis]
        if (indices < 0).any():  # TF's gather takes no negative indices
            if length is None:
                raise ctx.unsupported("negative indices into a dim of unknown size")
            indices = np.where(indices < 0, indices + length, indices)
        index_rank = indices.ndim
    else:
        indices = tf.cast(ctx.plain(1), tf.int32)
        index_rank = indices_held.rank
        # Negative indices count from the end (GATHER takes none).
        length = ctx.ir_dims(0)[axis]
        indices = tf.where(indices < 0, indices + length, indices)
    if index_rank == 0:
        y = tf.gather(ctx.tensor(0), indices, axis=layout.held_axis(held.perm, axis))
        ctx.set(y, layout.drop_axes(held.perm, [axis]))
    elif index_rank == 1:
        ctx.set(tf.gather(ctx.tensor(0), indices, axis=layout.held_axis(held.perm, axis)), held.perm)
    else:
        ctx.set(tf.gather(ctx.plain(0), indices, axis=axis))


@emits("Tile", dtypes=MOVABLE)
def tile(ctx: EmitContext) -> None:
    held = ctx.held(0)
    repeats = ctx.vector(1)
    if isinstance(repeats, np.ndarray):
        repeats = [int(r) for r in held_vector(repeats, held.perm)]
    else:
        repeats = held_vector(repeats, held.perm)  # the repeats of the IR axes, in the held order
    ctx.set(tf.tile(ctx.tensor(0), repeats), held.perm)


def _block_size(ctx: EmitContext) -> int:
    if ctx.rank(0) != 4:
        raise ctx.unsupported("rank != 4")
    return int(ctx.attr("blocksize"))


@emits("DepthToSpace", dtypes=MOVABLE)
def depth_to_space(ctx: EmitContext) -> None:
    block = _block_size(ctx)
    x = ctx.channels_last(0)
    if ctx.text("mode", "DCR") == "CRD":
        # CRD reads channel c*b*b + i*b + j where DCR (TF's) reads (i*b + j)*C + c: regather the channels.
        channels = ctx.ir_shape(0)[1]
        out = channels // (block * block)
        order = np.arange(channels).reshape(out, block * block).T.reshape(-1)
        x = tf.gather(x, order.astype(np.int32), axis=3)
    ctx.set(tf.nn.depth_to_space(x, block), layout.channels_last(4))


@emits("SpaceToDepth", dtypes=MOVABLE)
def space_to_depth(ctx: EmitContext) -> None:
    block = _block_size(ctx)
    y = tf.nn.space_to_depth(ctx.channels_last(0), block)
    if ctx.text("mode", "DCR") == "CRD":
        # TF writes channel (i*b + j)*C + c; CRD (opset 25's mode) wants c*b*b + i*b + j.
        channels = ctx.ir_shape(0)[1]
        order = np.arange(channels * block * block).reshape(block * block, channels).T.reshape(-1)
        y = tf.gather(y, order.astype(np.int32), axis=3)
    ctx.set(y, layout.channels_last(4))

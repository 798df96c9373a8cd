"""Concat, Split, Slice, Gather, Tile, DepthToSpace/SpaceToDepth with their axes in the held layout."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, narrow
from qconvert.backends.tflite.ops.common import aligned
from qconvert.backends.tflite.registry import emits

INT32_MAX = 2**31 - 1


@emits("Concat")
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


@emits("Split")
def split(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), held.rank)
    sizes = ctx.attr("split")
    if sizes is None and ctx.has_input(1):
        sizes = ctx.const(1, "split").tolist()
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


@emits("Slice")
def slice_op(ctx: EmitContext) -> None:
    held = ctx.held(0)
    rank = held.rank
    starts = ctx.const(1, "starts").astype(np.int64).tolist()
    ends = ctx.const(2, "ends").astype(np.int64).tolist()
    axes = ctx.const(3, "axes").tolist() if ctx.has_input(3) else list(range(len(starts)))
    steps = ctx.const(4, "steps").tolist() if ctx.has_input(4) else [1] * len(starts)
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


@emits("Gather")
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
    if index_rank == 0:
        y = tf.gather(ctx.tensor(0), indices, axis=layout.held_axis(held.perm, axis))
        ctx.set(y, layout.drop_axes(held.perm, [axis]))
    elif index_rank == 1:
        ctx.set(tf.gather(ctx.tensor(0), indices, axis=layout.held_axis(held.perm, axis)), held.perm)
    else:
        ctx.set(tf.gather(ctx.plain(0), indices, axis=axis))


@emits("Tile")
def tile(ctx: EmitContext) -> None:
    held = ctx.held(0)
    repeats = ctx.const(1, "repeats").astype(np.int32)
    ctx.set(tf.tile(ctx.tensor(0), [int(repeats[a]) for a in held.perm]), held.perm)


def _block_op(ctx: EmitContext, function) -> None:
    if ctx.rank(0) != 4:
        raise ctx.unsupported("rank != 4")
    mode = ctx.text("mode", "DCR")
    if mode != "DCR":
        raise ctx.unsupported(f"mode {mode}")
    ctx.set(function(ctx.channels_last(0), int(ctx.attr("blocksize"))), layout.channels_last(4))


@emits("DepthToSpace")
def depth_to_space(ctx: EmitContext) -> None:
    _block_op(ctx, tf.nn.depth_to_space)


@emits("SpaceToDepth")
def space_to_depth(ctx: EmitContext) -> None:
    _block_op(ctx, tf.nn.space_to_depth)

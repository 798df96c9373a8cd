"""Transpose, Squeeze/Unsqueeze, Expand, Constant, Cast and shape queries (Reshape is in reshape.py).

Transpose is free: its output reuses the input tensor with a new held perm.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, narrow, tf_dtype
from qconvert.backends.tflite.ops.common import axes_attr_or_input
from qconvert.backends.tflite.registry import emits


@emits("Identity", "Dropout")
def identity(ctx: EmitContext) -> None:
    ctx.values.held[ctx.node.outputs[0].name] = ctx.held(0)


@emits("Constant")
def constant(ctx: EmitContext) -> None:
    for name in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        value = ctx.attr(name)
        if value is not None:
            ctx.set(np.asarray(value))
            return
    raise ctx.unsupported("sparse or string constant")


@emits("Cast")
def cast(ctx: EmitContext) -> None:
    dtype = tf_dtype(ir.DataType(ctx.attr("to")))
    x = ctx.tensor(0)
    ctx.set(x if x.dtype == dtype else tf.cast(x, dtype), ctx.perm(0))


@emits("Transpose")
def transpose(ctx: EmitContext) -> None:
    held = ctx.held(0)
    perm = ctx.attr("perm") or tuple(reversed(range(held.rank)))
    ctx.set(held.tensor, layout.after_transpose(held.perm, perm))


@emits("Squeeze")
def squeeze(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axes = axes_attr_or_input(ctx, 1)
    shape = ctx.ir_shape(0)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = [layout.normalize_axis(a, held.rank) for a in axes]
    held_axes = sorted(layout.held_axis(held.perm, a) for a in axes)
    ctx.set(tf.squeeze(held.tensor, held_axes), layout.drop_axes(held.perm, axes))


@emits("Unsqueeze")
def unsqueeze(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axes = axes_attr_or_input(ctx, 1)
    rank = held.rank + len(axes)
    axes = sorted(layout.normalize_axis(a, rank) for a in axes)
    x = held.tensor
    if held.perm == layout.identity(held.rank):
        for axis in axes:
            x = tf.expand_dims(x, axis)
        ctx.set(x, layout.identity(rank))
        return
    for _ in axes:  # new size-1 axes at the held end: no data moves
        x = tf.expand_dims(x, -1)
    ctx.set(x, layout.insert_axes(held.perm, axes))


@emits("Shape")
def shape(ctx: EmitContext) -> None:
    rank = ctx.rank(0)
    start = layout.normalize_axis(int(ctx.attr("start", 0)), rank)
    end = ctx.attr("end")
    end = rank if end is None else layout.normalize_axis(int(end), rank)
    start, end = max(0, min(start, rank)), max(0, min(end, rank))
    dims = ctx.ir_shape(0)[start:end]
    if all(d is not None for d in dims):
        ctx.set(np.array(dims, np.int64))
        return
    # Known dims stay constants inside the stacked shape, so a Reshape to it keeps them static
    # (TF's shape inference reads through Pack) and later ops see their spatial sizes.
    held = ctx.held(0)
    dynamic = tf.shape(held.tensor)
    ctx.set(tf.stack([d if d is not None else dynamic[layout.held_axis(held.perm, a)]
                      for a, d in zip(range(start, end), dims)]))


@emits("Size")
def size(ctx: EmitContext) -> None:
    dims = ctx.ir_shape(0)
    if all(d is not None for d in dims):
        ctx.set(np.array(int(np.prod(dims)), np.int64))
    else:
        ctx.set(tf.size(ctx.tensor(0)))


@emits("Expand")
def expand(ctx: EmitContext) -> None:
    held = ctx.held(0)
    target = [int(d) for d in ctx.const(1, "shape")]
    rank = max(held.rank, len(target))
    source = [1] * (rank - held.rank) + ctx.ir_shape(0)
    target = [1] * (rank - len(target)) + target
    # ONNX broadcasts both ways: a 1 in the target keeps the input's dim.
    dims = [s if t == 1 else t for s, t in zip(source, target)]
    if dims == source and held.rank == rank:
        ctx.values.held[ctx.node.outputs[0].name] = held
        return
    if held.rank == rank:
        x, perm = ctx.tensor(0), held.perm
    else:
        x, perm = ctx.plain(0), layout.identity(rank)
        for _ in range(rank - held.rank):
            x = tf.expand_dims(x, 0)
    held_dims = [dims[a] for a in perm]
    if any(d is None for d in held_dims):
        dynamic = tf.shape(x)
        held_dims = tf.stack([dynamic[i] if d is None else d for i, d in enumerate(held_dims)])
    ctx.set(tf.broadcast_to(x, held_dims), perm)


@emits("ConstantOfShape")
def constant_of_shape(ctx: EmitContext) -> None:
    value = ctx.attr("value")
    fill = narrow(np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0))
    ctx.set(tf.fill(tf.cast(ctx.plain(0), tf.int32), fill))


@emits("Range")
def range_op(ctx: EmitContext) -> None:
    start, limit, delta = (ctx.plain(i) for i in range(3))
    ctx.set(tf.range(start, limit, delta))

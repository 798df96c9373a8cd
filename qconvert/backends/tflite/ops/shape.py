"""Transpose, Squeeze/Unsqueeze, Expand, Constant, Cast and shape queries (Reshape is in reshape.py).

Transpose is free: its output reuses the input tensor with a new held perm. Shape vectors may be known
at emit time (NumPy) or computed at run time (int32 tensors); a run-time vector that describes an IR
tensor held in another arrangement is permuted like that tensor (``held_vector``), never the data.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, narrow, tf_dtype
from qconvert.backends.tflite.ops.common import axes_attr_or_input
from qconvert.backends.tflite.registry import BYTES, CASTABLE, MOVABLE, NUMERIC, emits


def held_vector(vector, perm: layout.Perm):
    """A per-IR-axis vector (NumPy or tensor) reordered to the held axes."""
    if isinstance(vector, np.ndarray):
        return vector[list(perm)]
    return vector if perm == layout.identity(len(perm)) else tf.gather(vector, list(perm))


@emits("Identity", dtypes=CASTABLE)
def identity(ctx: EmitContext) -> None:
    ctx.values.held[ctx.node.outputs[0].name] = ctx.held(0)


@emits("Dropout", dtypes=CASTABLE)
def dropout(ctx: EmitContext) -> None:
    """Inference: the input unchanged, and a mask of ones when it is asked for."""
    if ctx.has_input(2):
        training = ctx.static(2)
        if training is None or bool(np.asarray(training).reshape(-1)[0]):
            raise ctx.unsupported("training mode (random)")
    ctx.values.held[ctx.node.outputs[0].name] = ctx.held(0)
    if ctx.output_count > 1 and ctx.node.outputs[1] is not None:
        ctx.set(tf.ones_like(ctx.tensor(0), dtype=tf.bool), ctx.perm(0), index=1)


@emits("Constant")
def constant(ctx: EmitContext) -> None:
    for name in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        value = ctx.attr(name)
        if value is not None:
            ctx.set(np.asarray(value))
            return
    raise ctx.unsupported("sparse or string constant")


def _cast(ctx: EmitContext, dtype: tf.DType) -> None:
    x = ctx.tensor(0)
    ctx.set(x if x.dtype == dtype else tf.cast(x, dtype), ctx.perm(0))


@emits("Cast", dtypes=CASTABLE)
def cast(ctx: EmitContext) -> None:
    if ctx.attr("saturate", 1) == 0 and ir.DataType(ctx.attr("to")).name.startswith("FLOAT8"):
        raise ctx.unsupported("float8")
    _cast(ctx, tf_dtype(ir.DataType(ctx.attr("to"))))


@emits("CastLike", dtypes=CASTABLE)
def cast_like(ctx: EmitContext) -> None:
    _cast(ctx, ctx.dtype(1))


@emits("Transpose", dtypes=BYTES)
def transpose(ctx: EmitContext) -> None:
    held = ctx.held(0)
    perm = ctx.attr("perm") or tuple(reversed(range(held.rank)))
    ctx.set(held.tensor, layout.after_transpose(held.perm, perm))


def _runtime_axes(ctx: EmitContext, index: int, rank: int) -> tf.Tensor:
    """Axes given as a run-time tensor, made non-negative."""
    axes = ctx.vector(index)
    return tf.where(axes < 0, axes + rank, axes)


@emits("Squeeze", dtypes=BYTES)
def squeeze(ctx: EmitContext) -> None:
    held = ctx.held(0)
    if ctx.attr("axes") is None and ctx.has_input(1) and ctx.static(1) is None:
        # Which axes go is known only at run time: keep the dims whose index is not among them.
        count = ctx.node.inputs[1].shape[0] if ctx.node.inputs[1].shape else None
        if not isinstance(count, int):
            raise ctx.unsupported("squeeze axes of unknown count")
        x = ctx.plain(0)
        axes = _runtime_axes(ctx, 1, held.rank)
        dropped = tf.reduce_any(tf.equal(tf.range(held.rank)[:, None], axes[None, :]), axis=1)
        kept = tf.reshape(tf.where(tf.logical_not(dropped)), [-1])
        y = tf.reshape(x, tf.gather(tf.shape(x), kept)) if held.rank - count > 0 else tf.reshape(x, [])
        y.set_shape([None] * (held.rank - count))  # the rank is known even where the dims are not
        ctx.set(y)
        return
    axes = axes_attr_or_input(ctx, 1)
    shape = ctx.ir_shape(0)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
        if any(d is None for d in shape):
            raise ctx.unsupported("squeeze without axes of a tensor with dims of unknown size")
    axes = [layout.normalize_axis(a, held.rank) for a in axes]
    held_axes = sorted(layout.held_axis(held.perm, a) for a in axes)
    ctx.set(tf.squeeze(held.tensor, held_axes), layout.drop_axes(held.perm, axes))


@emits("Unsqueeze", dtypes=BYTES)
def unsqueeze(ctx: EmitContext) -> None:
    held = ctx.held(0)
    if ctx.attr("axes") is None and ctx.has_input(1) and ctx.static(1) is None:
        count = ctx.node.inputs[1].shape[0] if ctx.node.inputs[1].shape else None
        if not isinstance(count, int):
            raise ctx.unsupported("unsqueeze axes of unknown count")
        rank = held.rank + count
        x = ctx.plain(0)
        axes = _runtime_axes(ctx, 1, rank)
        inserted = tf.reduce_any(tf.equal(tf.range(rank)[:, None], axes[None, :]), axis=1)
        # Output dim i is 1 where inserted, else the next input dim in order.
        source = tf.cumsum(tf.cast(tf.logical_not(inserted), tf.int32)) - 1
        dims = tf.gather(tf.concat([tf.shape(x), [1]], 0), tf.where(inserted, tf.fill([rank], held.rank), source))
        ctx.set(tf.reshape(x, dims))
        return
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
        ctx.set(tf.size(ctx.tensor(0), out_type=tf.int32))


@emits("Expand", dtypes=BYTES)
def expand(ctx: EmitContext) -> None:
    held = ctx.held(0)
    target = ctx.vector(1)
    length = target.shape[0] if isinstance(target, np.ndarray) else target.shape.as_list()[0]
    if length is None:
        raise ctx.unsupported("a shape of unknown length")
    rank = max(held.rank, length)
    if held.is_const and rank == 4:
        x, perm = ctx.tensor(0, layout.channels_last(4)), layout.channels_last(4)  # as images are held
    elif held.rank == rank:
        x, perm = ctx.tensor(0), held.perm
    else:
        x, perm = ctx.plain(0), layout.identity(rank)
        for _ in range(rank - held.rank):
            x = tf.expand_dims(x, 0)
    if isinstance(target, np.ndarray):
        target = np.concatenate([np.ones(rank - length, np.int32), target.astype(np.int32)])
        source = [1] * (rank - held.rank) + ctx.ir_shape(0)
        # ONNX broadcasts both ways: a 1 in the target keeps the input's dim.
        dims = [s if t == 1 else int(t) for s, t in zip(source, target)]
        if dims == source and held.rank == rank:
            ctx.values.held[ctx.node.outputs[0].name] = held
            return
        held_dims = [dims[a] for a in perm]
        if any(d is None for d in held_dims):
            dynamic = tf.shape(x)
            held_dims = tf.stack([dynamic[i] if d is None else d for i, d in enumerate(held_dims)])
        ctx.set(tf.broadcast_to(x, held_dims), perm)
        return
    target = tf.concat([tf.ones([rank - length], tf.int32), target], 0) if rank > length else target
    # Both-way broadcasting at run time: the larger of each pair (a 1 on either side gives way).
    held_target = held_vector(target, perm)
    ctx.set(tf.broadcast_to(x, tf.maximum(tf.shape(x), held_target)), perm)


@emits("ConstantOfShape")
def constant_of_shape(ctx: EmitContext) -> None:
    value = ctx.attr("value")
    fill = narrow(np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0))
    dims = ctx.vector(0)
    if isinstance(dims, np.ndarray) and 0 in dims:
        raise ctx.unsupported("an empty result")
    y = tf.fill(dims, fill)
    if not isinstance(dims, np.ndarray):  # keep the dims TF knows (size-1 axes then reshape, never transpose)
        y.set_shape([d if isinstance(d, int) else None for d in ctx.elements(0)])
    ctx.set(y)


def _scalar(ctx: EmitContext, index: int):
    static = ctx.static(index)
    if static is not None:
        return narrow(np.asarray(static)).reshape(())
    return tf.reshape(ctx.plain(index), [])


@emits("Range", dtypes=NUMERIC)
def range_op(ctx: EmitContext) -> None:
    start, limit, delta = (_scalar(ctx, i) for i in range(3))
    dtype = ctx.dtype(0)
    start, limit, delta = (v.astype(dtype.as_numpy_dtype) if isinstance(v, np.ndarray) else tf.cast(v, dtype)
                           for v in (start, limit, delta))
    ctx.set(tf.range(start, limit, delta))


@emits("EyeLike", dtypes=MOVABLE)
def eye_like(ctx: EmitContext) -> None:
    if ctx.rank(0) != 2:
        raise ctx.unsupported("rank != 2")
    dtype = tf_dtype(ir.DataType(ctx.attr("dtype"))) if ctx.attr("dtype") is not None else ctx.dtype(0)
    k = int(ctx.attr("k", 0))
    rows, columns = ctx.ir_dims(0)
    diagonal = tf.equal(tf.range(columns)[None, :] - tf.range(rows)[:, None], k)
    ctx.set(tf.cast(diagonal, dtype))

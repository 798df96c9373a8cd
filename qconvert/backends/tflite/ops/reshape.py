"""Reshape and Flatten, which keep the IR's (NCHW) meaning.

They see the value in the IR's arrangement, which costs nothing when the two arrangements differ only
by size-1 axes (an NHWC [N, 1, 1, C] is an NCHW [N, C, 1, 1]). A flatten read only by dense layers takes
the channels-last map as it is and the dense layers permute their weight rows instead.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import BYTES, emits


def _dynamic_dims(tensor: tf.Tensor) -> list:
    """Static dims as ints, unknown ones as scalar tensors."""
    static = tensor.shape.as_list()
    dynamic = tf.shape(tensor)
    return [d if d is not None else dynamic[i] for i, d in enumerate(static)]


def _reshape(x: tf.Tensor, dims: list) -> tf.Tensor:
    """tf.reshape with at most one unknown dim written as -1, so the shape stays a constant."""
    unknown = [i for i, d in enumerate(dims) if not isinstance(d, (int, np.integer))]
    if len(unknown) == 1 and not any(isinstance(d, (int, np.integer)) and d == -1 for d in dims):
        dims = [-1 if i == unknown[0] else d for i, d in enumerate(dims)]
    if all(isinstance(d, (int, np.integer)) for d in dims):
        return tf.reshape(x, [int(d) for d in dims])
    return tf.reshape(x, tf.stack([tf.cast(d, tf.int32) for d in dims]))


def _already(held_tensor: tf.Tensor, perm: layout.Perm, dims: list) -> bool:
    """True when the held tensor is already the reshape's result: same memory order, same dims."""
    shape = held_tensor.shape.as_list()
    if layout.moves_data(shape, layout.between(perm, layout.identity(len(perm)))) or len(shape) != len(dims):
        return False
    if shape.count(None) > 1:
        return False

    def same(static, wanted) -> bool:
        if static is None:  # the unknown dim: -1 or a run-time size
            return not isinstance(wanted, int) or wanted == -1
        return isinstance(wanted, int) and wanted == static

    return all(same(d, w) for d, w in zip(shape, dims))


def _feeds_dense_layers(ctx: EmitContext) -> bool:
    """Every consumer is Gemm/MatMul taking this as A against constant weights (and no graph output)."""
    value = ctx.node.outputs[0]
    if value.is_graph_output() or not value.uses():
        return False
    for node, index in value.uses():
        weights = ctx.values.held.get(node.inputs[1].name) if len(node.inputs) > 1 and node.inputs[1] else None
        dense = (node.op_type == "MatMul" or (node.op_type == "Gemm" and not node.attributes.get_int("transA", 0)))
        if index != 0 or not dense or weights is None or not weights.is_const or weights.rank != 2:
            return False
    return True


def _flatten_channels_last(ctx: EmitContext) -> bool:
    """Flatten a channels-last map as it is held when only dense layers read the result.

    The dense layers permute their weight rows to match, so the classic conv -> flatten -> linear
    boundary needs no TRANSPOSE. False (nothing emitted) when that does not apply.
    """
    held = ctx.held(0)
    shape = ctx.ir_shape(0)
    if held.is_const or held.rank < 3 or held.perm[0] != 0 or any(d is None for d in shape[1:]):
        return False
    if not layout.moves_data(held.tensor.shape.as_list(), layout.between(held.perm, layout.identity(held.rank))):
        return False  # a plain reshape already costs nothing
    if not _feeds_dense_layers(ctx):
        return False
    ir_columns = np.arange(int(np.prod(shape[1:]))).reshape(shape[1:])
    columns = ir_columns.transpose([a - 1 for a in held.perm[1:]]).reshape(-1)
    ctx.set(tf.reshape(held.tensor, [-1, columns.size]))
    ctx.values.held[ctx.node.outputs[0].name].columns = columns
    return True


def _reshape_at_run_time(ctx: EmitContext, allow_zero: bool) -> None:
    """A shape computed at run time; its 0s copy the input's dims (unless allowzero)."""
    x = ctx.plain(0)
    dims = ctx.vector(1)
    length = dims.shape.as_list()[0]
    if not allow_zero:
        if length is None:
            raise ctx.unsupported("a shape of unknown length")
        source = tf.shape(x)
        rank = ctx.rank(0)
        copied = tf.concat([source[:min(length, rank)], tf.zeros([max(length - rank, 0)], tf.int32)], 0)
        dims = tf.where(tf.equal(dims, 0), copied, dims)
    ctx.set(tf.reshape(x, dims))


@emits("Reshape", dtypes=BYTES)
def reshape(ctx: EmitContext) -> None:
    allow_zero = bool(ctx.attr("allowzero", 0))
    if ctx.static(1) is None:
        _reshape_at_run_time(ctx, allow_zero)
        return
    held = ctx.held(0)
    dims = [int(d) for d in ctx.static(1)]
    if allow_zero and 0 in dims:
        raise ctx.unsupported("an empty result (allowzero with a 0 dim)")
    rest = ctx.ir_shape(0)[1:]
    size = int(np.prod(rest)) if rest and None not in rest else None
    keeps_batch = dims[0] == -1 or (dims[0] == 0 and not allow_zero) if dims else False
    if len(dims) == 2 and keeps_batch and dims[1] in (-1, size) and dims != [-1, -1] \
            and _flatten_channels_last(ctx):
        return
    x = ctx.plain(0)
    source = _dynamic_dims(x)
    dims = [source[i] if d == 0 and not allow_zero else d for i, d in enumerate(dims)]
    if not held.is_const and _already(held.tensor, held.perm, dims):
        # e.g. tf2onnx's closing NCHW->NHWC "transpose" of a 1-channel map, written as a Reshape.
        ctx.set(held.tensor)
        return
    ctx.set(_reshape(x, dims))


def _product(dims: list):
    """Product of dims that may include run-time scalars."""
    if all(isinstance(d, int) for d in dims):
        return int(np.prod(dims, dtype=np.int64))
    result = 1
    for d in dims:
        result = result * d
    return result


@emits("Flatten", dtypes=BYTES)
def flatten(ctx: EmitContext) -> None:
    axis = layout.normalize_axis(int(ctx.attr("axis", 1)), ctx.rank(0))
    if axis == 1 and _flatten_channels_last(ctx):
        return
    x = ctx.plain(0)
    dims = _dynamic_dims(x)
    ctx.set(_reshape(x, [_product(dims[:axis]), _product(dims[axis:])]))

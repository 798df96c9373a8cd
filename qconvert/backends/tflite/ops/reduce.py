"""Reductions and ArgMax/ArgMin over IR axes mapped to the held layout."""

from __future__ import annotations

import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import axes_attr_or_input
from qconvert.backends.tflite.registry import emits

REDUCERS = {
    "ReduceMean": tf.reduce_mean, "ReduceSum": tf.reduce_sum, "ReduceMax": tf.reduce_max,
    "ReduceMin": tf.reduce_min, "ReduceProd": tf.reduce_prod,
    "ReduceSumSquare": lambda x, axes, keepdims: tf.reduce_sum(tf.square(x), axes, keepdims=keepdims),
    "ReduceL2": lambda x, axes, keepdims: tf.sqrt(tf.reduce_sum(tf.square(x), axes, keepdims=keepdims)),
    "ReduceL1": lambda x, axes, keepdims: tf.reduce_sum(tf.abs(x), axes, keepdims=keepdims),
}


@emits(*REDUCERS)
def reduce(ctx: EmitContext) -> None:
    held = ctx.held(0)
    # ReduceSum took axes as an input from opset 13, the others from opset 18.
    axes_input = 1 if (ctx.op_type == "ReduceSum" and ctx.opset >= 13) or ctx.opset >= 18 else 99
    axes = axes_attr_or_input(ctx, axes_input)
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            ctx.values.held[ctx.node.outputs[0].name] = held
            return
        axes = list(range(held.rank))
    axes = sorted(layout.normalize_axis(a, held.rank) for a in axes)
    keepdims = bool(ctx.attr("keepdims", 1))
    held_axes = sorted(layout.held_axis(held.perm, a) for a in axes)
    y = REDUCERS[ctx.op_type](ctx.tensor(0), held_axes, keepdims=keepdims)
    ctx.set(y, held.perm if keepdims else layout.drop_axes(held.perm, axes))


@emits("ArgMax", "ArgMin")
def arg_reduce(ctx: EmitContext) -> None:
    if ctx.attr("select_last_index", 0):
        raise ctx.unsupported("select_last_index")
    held = ctx.held(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), held.rank)
    position = layout.held_axis(held.perm, axis)
    function = tf.argmax if ctx.op_type == "ArgMax" else tf.argmin
    y = function(ctx.tensor(0), axis=position, output_type=tf.int32)
    if ctx.attr("keepdims", 1):
        ctx.set(tf.expand_dims(y, position), held.perm)
    else:
        ctx.set(y, layout.drop_axes(held.perm, [axis]))

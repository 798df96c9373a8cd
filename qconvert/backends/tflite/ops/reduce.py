"""Reductions and ArgMax/ArgMin over IR axes mapped to the held layout.

Axes known at emit time reduce the tensor where it is held; axes computed at run time are mapped to the
held order with the inverse perm (a GATHER on the axes, not a transpose of the data).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import NUMERIC, emits


REDUCERS = {
    "ReduceMean": tf.reduce_mean, "ReduceSum": tf.reduce_sum, "ReduceMax": tf.reduce_max,
    "ReduceMin": tf.reduce_min, "ReduceProd": tf.reduce_prod,
    "ReduceSumSquare": lambda x, axes, keepdims: tf.reduce_sum(tf.square(x), axes, keepdims=keepdims),
    "ReduceL2": lambda x, axes, keepdims: tf.sqrt(tf.reduce_sum(tf.square(x), axes, keepdims=keepdims)),
    "ReduceL1": lambda x, axes, keepdims: tf.reduce_sum(tf.abs(x), axes, keepdims=keepdims),
    "ReduceLogSum": lambda x, axes, keepdims: tf.math.log(tf.reduce_sum(x, axes, keepdims=keepdims)),
}
FLOAT_ONLY = {"ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMean"}


def _reduce(ctx: EmitContext, function) -> None:
    held = ctx.held(0)
    # ReduceSum took axes as an input from opset 13, the others from opset 18.
    axes_input = 1 if (ctx.op_type == "ReduceSum" and ctx.opset >= 13) or ctx.opset >= 18 else None
    keepdims = bool(ctx.attr("keepdims", 1))
    axes = ctx.attr("axes")
    if axes is None and axes_input is not None and ctx.has_input(axes_input):
        axes = ctx.vector(axes_input)
        if not isinstance(axes, np.ndarray):
            _reduce_at_run_time(ctx, function, axes, keepdims)
            return
    axes = None if axes is None else [int(a) for a in np.atleast_1d(axes)]
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            ctx.values.held[ctx.node.outputs[0].name] = held
            return
        axes = list(range(held.rank))
    axes = sorted(layout.normalize_axis(a, held.rank) for a in axes)
    held_axes = sorted(layout.held_axis(held.perm, a) for a in axes)
    x = ctx.tensor(0)
    y = function(x, held_axes, keepdims=keepdims) if held_axes else x
    ctx.set(y, held.perm if keepdims else layout.drop_axes(held.perm, axes))


def _reduce_at_run_time(ctx: EmitContext, function, axes: tf.Tensor, keepdims: bool) -> None:
    held = ctx.held(0)
    if ctx.attr("noop_with_empty_axes", 0):
        raise ctx.unsupported("noop_with_empty_axes with axes computed at run time")
    if axes.shape.as_list()[0] == 0:
        axes = tf.range(held.rank)
    axes = tf.where(axes < 0, axes + held.rank, axes)
    if keepdims:  # the held perm survives: reduce where the tensor is held
        ctx.set(function(ctx.tensor(0), tf.gather(np.array(layout.inverse(held.perm), np.int32), axes),
                         keepdims=True), held.perm)
        return
    # Which axes remain is known only at run time: reduce the IR-ordered tensor.
    y = function(ctx.plain(0), axes, keepdims=False)
    y.set_shape([None] * (held.rank - int(axes.shape[0])))  # the count of axes is known, which ones are not
    ctx.set(y)


@emits(*REDUCERS, dtypes=NUMERIC)
def reduce(ctx: EmitContext) -> None:
    if ctx.op_type in FLOAT_ONLY and ctx.dtype(0).is_integer:
        raise ctx.unsupported("integer input")
    _reduce(ctx, REDUCERS[ctx.op_type])


@emits("ReduceLogSumExp", dtypes=NUMERIC)
def reduce_log_sum_exp(ctx: EmitContext) -> None:
    if ctx.dtype(0).is_integer:
        raise ctx.unsupported("integer input")

    def function(x, axes, keepdims):
        peak = tf.reduce_max(x, axes, keepdims=True)  # subtracted first, so EXP cannot overflow
        total = tf.math.log(tf.reduce_sum(tf.exp(x - peak), axes, keepdims=keepdims))
        return total + (peak if keepdims else tf.reduce_max(x, axes, keepdims=False))

    _reduce(ctx, function)


@emits("ArgMax", "ArgMin", dtypes=NUMERIC)
def arg_reduce(ctx: EmitContext) -> None:
    held = ctx.held(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", 0)), held.rank)
    position = layout.held_axis(held.perm, axis)
    function = tf.argmax if ctx.op_type == "ArgMax" else tf.argmin
    x = ctx.tensor(0)
    if ctx.attr("select_last_index", 0):
        # The last extreme is the first one of the reversed axis, counted back from the end.
        length = x.shape[position] if x.shape[position] is not None else tf.shape(x)[position]
        y = (length - 1) - function(tf.reverse(x, [position]), axis=position, output_type=tf.int32)
    else:
        y = function(x, axis=position, output_type=tf.int32)
    if ctx.attr("keepdims", 1):
        ctx.set(tf.expand_dims(y, position), held.perm)
    else:
        ctx.set(y, layout.drop_axes(held.perm, [axis]))

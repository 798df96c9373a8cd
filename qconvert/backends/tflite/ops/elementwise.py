"""Broadcasting binary and ternary ops: arithmetic, comparisons, logic, Where, Min/Max."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned, runtime_dtype, same_dtype
from qconvert.backends.tflite.registry import emits

BINARY = {
    "Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply,
    "Equal": tf.equal, "Less": tf.less, "Greater": tf.greater,
    "LessOrEqual": tf.less_equal, "GreaterOrEqual": tf.greater_equal,
    "And": tf.logical_and, "Or": tf.logical_or,
}


def _binary(ctx: EmitContext, function) -> None:
    (a, b), perm = aligned(ctx, [0, 1])
    a, b = same_dtype([a, b], runtime_dtype(ctx, [0, 1]))
    ctx.set(function(a, b), perm)


@emits(*BINARY)
def binary(ctx: EmitContext) -> None:
    _binary(ctx, BINARY[ctx.op_type])


@emits("Div")
def div(ctx: EmitContext) -> None:
    dtype = runtime_dtype(ctx, [0, 1])
    if dtype.is_integer:
        # ONNX integer Div truncates toward zero; float division then a truncating cast does that.
        _binary(ctx, lambda a, b: tf.cast(tf.cast(a, tf.float32) / tf.cast(b, tf.float32), dtype))
    elif ctx.held(1).is_const and ctx.held(1).tensor.size == 1 and ctx.held(1).rank <= ctx.rank(0):
        # x / c as x * (1/c): MUL is cheaper and fuses into neighbours.
        (a,), perm = aligned(ctx, [0])
        reciprocal = (1.0 / ctx.held(1).tensor.astype(np.float64)).astype(dtype.as_numpy_dtype)
        ctx.set(a * reciprocal.reshape(()), perm)
    else:
        _binary(ctx, tf.divide)


@emits("Pow")
def power(ctx: EmitContext) -> None:
    (x,), perm = aligned(ctx, [0])
    exponent = ctx.held(1)
    if exponent.is_const and exponent.tensor.size == 1 and exponent.rank <= ctx.rank(0):
        # Small constant exponents become multiplies; POW is slower and less exact.
        value = float(exponent.tensor.reshape(()))
        simple = {1.0: lambda t: t, 2.0: tf.square, 3.0: lambda t: t * t * t, 0.5: tf.sqrt,
                  -1.0: tf.math.reciprocal, -0.5: tf.math.rsqrt}
        if value in simple:
            ctx.set(simple[value](x), perm)
            return
    (x, y), perm = aligned(ctx, [0, 1])
    x, y = same_dtype([x, y], runtime_dtype(ctx, [0]))
    ctx.set(tf.pow(x, tf.cast(y, x.dtype) if not isinstance(y, np.ndarray) else y), perm)


@emits("Max", "Min", "Sum", "Mean")
def variadic(ctx: EmitContext) -> None:
    indices = [i for i in range(len(ctx.node.inputs)) if ctx.has_input(i)]
    values, perm = aligned(ctx, indices)
    values = same_dtype(values, runtime_dtype(ctx, indices))
    combine = {"Max": tf.maximum, "Min": tf.minimum, "Sum": tf.add, "Mean": tf.add}[ctx.op_type]
    result = values[0]
    for value in values[1:]:
        result = combine(result, value)
    if ctx.op_type == "Mean":
        result = result * np.float32(1.0 / len(values))
    ctx.set(tf.convert_to_tensor(result), perm)


@emits("Where")
def where(ctx: EmitContext) -> None:
    (condition, x, y), perm = aligned(ctx, [0, 1, 2])
    x, y = same_dtype([x, y], runtime_dtype(ctx, [1, 2]))
    ctx.set(tf.where(tf.cast(condition, tf.bool), x, y), perm)


@emits("Not")
def logical_not(ctx: EmitContext) -> None:
    ctx.set(tf.logical_not(ctx.tensor(0)), ctx.perm(0))

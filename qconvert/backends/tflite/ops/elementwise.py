"""Broadcasting binary and variadic ops: arithmetic, comparisons, logic, Where, Min/Max, Mod, bit ops.

TFLite's integer kernels take int32 (int64 is carried as int32). 8- and 16-bit integers are widened to
int32, computed there and cast back: exact for comparisons, Min/Max, Add, Sub and Mul (CAST back wraps
like ONNX's integer arithmetic does).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned, runtime_dtype, same_dtype
from qconvert.backends.tflite.registry import LOGICAL, MOVABLE, NUMERIC, emits

WIDENED = frozenset({"int8", "uint8", "int16", "uint16"})
WIDENABLE = NUMERIC | WIDENED

ARITHMETIC = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply}
COMPARISONS = {"Equal": tf.equal, "Less": tf.less, "Greater": tf.greater,
               "LessOrEqual": tf.less_equal, "GreaterOrEqual": tf.greater_equal}
LOGIC = {"And": tf.logical_and, "Or": tf.logical_or, "Xor": tf.not_equal}


def _operands(ctx: EmitContext, indices) -> tuple[list, object, tf.DType]:
    """Inputs aligned to one arrangement and one dtype (8/16-bit integers widened to int32)."""
    values, perm = aligned(ctx, indices)
    dtype = runtime_dtype(ctx, indices)
    values = same_dtype(values, dtype)
    if dtype.name in WIDENED:
        values = [tf.cast(v, tf.int32) for v in values]
    return values, perm, dtype


def _binary(ctx: EmitContext, function, cast_back: bool = True) -> None:
    (a, b), perm, dtype = _operands(ctx, [0, 1])
    y = function(a, b)
    if cast_back and y.dtype != dtype:
        y = tf.cast(y, dtype)
    ctx.set(y, perm)


@emits(*ARITHMETIC, dtypes=WIDENABLE)
def arithmetic(ctx: EmitContext) -> None:
    _binary(ctx, ARITHMETIC[ctx.op_type])


@emits(*COMPARISONS, dtypes=WIDENABLE | {"bool"})
def comparison(ctx: EmitContext) -> None:
    if ctx.op_type != "Equal" and ctx.dtype(0) == tf.bool:
        raise ctx.unsupported("ordering booleans")
    _binary(ctx, COMPARISONS[ctx.op_type], cast_back=False)


@emits(*LOGIC, dtypes=LOGICAL)
def logic(ctx: EmitContext) -> None:
    _binary(ctx, LOGIC[ctx.op_type], cast_back=False)


def truncating_div(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """ONNX's integer Div rounds toward zero; FLOOR_DIV rounds down, so step back up where they differ."""
    q = tf.math.floordiv(a, b)
    inexact = tf.not_equal(q * b, a)
    signs_differ = tf.not_equal(tf.less(a, 0), tf.less(b, 0))
    return tf.where(tf.logical_and(inexact, signs_differ), q + 1, q)


@emits("Div", dtypes=WIDENABLE)
def div(ctx: EmitContext) -> None:
    dtype = runtime_dtype(ctx, [0, 1])
    if dtype.is_integer:
        _binary(ctx, truncating_div)
    elif ctx.held(1).is_const and ctx.held(1).tensor.size == 1 and ctx.held(1).rank <= ctx.rank(0):
        # x / c as x * (1/c): MUL is cheaper and fuses into neighbours.
        (a,), perm = aligned(ctx, [0])
        reciprocal = (1.0 / ctx.held(1).tensor.astype(np.float64)).astype(dtype.as_numpy_dtype)
        ctx.set(a * reciprocal.reshape(()), perm)
    else:
        _binary(ctx, tf.divide)


@emits("Mod", dtypes=WIDENABLE)
def mod(ctx: EmitContext) -> None:
    fmod = bool(ctx.attr("fmod", 0))
    if not fmod and not runtime_dtype(ctx, [0, 1]).is_integer:
        raise ctx.unsupported("fmod=0 on floats")

    def function(a, b):
        r = tf.math.floormod(a, b)  # the sign of the divisor (fmod=0)
        if not fmod:
            return r
        # fmod takes the sign of the dividend: step back by b where the two differ.
        differs = tf.logical_and(tf.not_equal(r, tf.zeros_like(r)), tf.not_equal(tf.less(r, 0), tf.less(a, 0)))
        return tf.where(differs, r - b, r)

    _binary(ctx, function)


@emits("Pow", dtypes=NUMERIC)
def power(ctx: EmitContext) -> None:
    (x,), perm = aligned(ctx, [0])
    exponent = ctx.held(1)
    if exponent.is_const and exponent.tensor.size == 1 and exponent.rank <= ctx.rank(0):
        # Small constant exponents become multiplies; POW is slower and less exact.
        value = float(exponent.tensor.reshape(()))
        simple = {1.0: lambda t: t, 2.0: tf.square, 3.0: lambda t: t * t * t, 0.5: tf.sqrt,
                  -1.0: tf.math.reciprocal, -0.5: tf.math.rsqrt}
        if value in simple and (x.dtype.is_floating or value in (1.0, 2.0, 3.0)):
            ctx.set(simple[value](x), perm)
            return
    (x, y), perm = aligned(ctx, [0, 1])
    dtype = ctx.dtype(0)
    # The output has the base's dtype; a float exponent of an integer base is computed in float.
    compute = tf.float32 if dtype.is_integer and ctx.dtype(1).is_floating else dtype
    x, y = (v.astype(compute.as_numpy_dtype) if isinstance(v, np.ndarray) else tf.cast(v, compute) for v in (x, y))
    y = tf.pow(x, y)
    ctx.set(y if y.dtype == dtype else tf.cast(y, dtype), perm)


@emits("Max", "Min", "Sum", "Mean", dtypes=WIDENABLE)
def variadic(ctx: EmitContext) -> None:
    indices = [i for i in range(len(ctx.node.inputs)) if ctx.has_input(i)]
    values, perm, dtype = _operands(ctx, indices)
    combine = {"Max": tf.maximum, "Min": tf.minimum, "Sum": tf.add, "Mean": tf.add}[ctx.op_type]
    result = tf.convert_to_tensor(values[0])
    for value in values[1:]:
        result = combine(result, value)
    if ctx.op_type == "Mean":
        result = result * np.float32(1.0 / len(values))
    if len(values) == 1:
        # One input: its shape, broadcast to nothing (a constant lone input is already a tensor).
        result = tf.identity(result)
    ctx.set(tf.cast(result, dtype) if result.dtype != dtype else result, perm)


@emits("Where", dtypes=MOVABLE)
def where(ctx: EmitContext) -> None:
    (condition, x, y), perm = aligned(ctx, [0, 1, 2])
    x, y = same_dtype([x, y], runtime_dtype(ctx, [1, 2]))
    ctx.set(tf.where(tf.cast(condition, tf.bool), x, y), perm)


@emits("Not", dtypes=LOGICAL)
def logical_not(ctx: EmitContext) -> None:
    ctx.set(tf.logical_not(ctx.tensor(0)), ctx.perm(0))

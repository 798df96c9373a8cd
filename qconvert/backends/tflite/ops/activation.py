"""Element-wise activations and math: layout-agnostic, so each output keeps its input's arrangement."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned
from qconvert.backends.tflite.registry import FLOAT, NUMERIC, emits


def _f(value: float) -> np.float32:
    return np.float32(value)


def _softplus(x: tf.Tensor) -> tf.Tensor:
    """log(1 + exp(x)) without overflow: relu(x) + log(1 + exp(-|x|))."""
    t = tf.exp(-tf.abs(x))
    # log(1 + t) loses t's digits when t is tiny; there log(1 + t) = t - t²/2 to float precision.
    return tf.nn.relu(x) + tf.where(t < 1e-3, t - 0.5 * t * t, tf.math.log(1.0 + t))


def _root_of_one_minus_square(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt((1.0 - x) * (1.0 + x))


# Each maps to builtins (TFLite has no TAN, ASIN, SINH... kernels: they are spelled with ATAN2, EXP, LOG).
UNARY = {
    "Sigmoid": tf.sigmoid, "Tanh": tf.tanh, "Exp": tf.exp, "Log": tf.math.log,
    "Sqrt": tf.sqrt, "Reciprocal": tf.math.reciprocal,
    "Floor": tf.floor, "Ceil": tf.math.ceil, "Round": tf.round, "Sin": tf.sin, "Cos": tf.cos,
    "Tan": lambda x: tf.sin(x) / tf.cos(x),
    "Atan": lambda x: tf.atan2(x, tf.ones_like(x)),
    "Asin": lambda x: tf.atan2(x, _root_of_one_minus_square(x)),
    "Acos": lambda x: tf.atan2(_root_of_one_minus_square(x), x),
    "Sinh": lambda x: (tf.exp(x) - tf.exp(-x)) * _f(0.5),
    "Cosh": lambda x: (tf.exp(x) + tf.exp(-x)) * _f(0.5),
    # Odd functions computed on |x| and signed back, which keeps them exact for negative inputs.
    "Asinh": lambda x: tf.sign(x) * tf.math.log(tf.abs(x) + tf.sqrt(x * x + 1.0)),
    "Acosh": lambda x: tf.math.log(x + tf.sqrt((x - 1.0) * (x + 1.0))),
    "Atanh": lambda x: _f(0.5) * tf.math.log((1.0 + x) / (1.0 - x)),
    "Softplus": _softplus,
    "Softsign": lambda x: x / (1.0 + tf.abs(x)),
    "Mish": lambda x: x * tf.tanh(_softplus(x)),
    "IsNaN": lambda x: tf.not_equal(x, x),
}
INTEGER_TOO = {"Relu": tf.nn.relu, "Abs": tf.abs, "Neg": tf.negative, "Sign": tf.sign}


def _same_layout(ctx: EmitContext, function) -> None:
    ctx.set(function(ctx.tensor(0)), ctx.perm(0))


@emits(*UNARY, dtypes=FLOAT)
def unary(ctx: EmitContext) -> None:
    _same_layout(ctx, UNARY[ctx.op_type])


@emits(*INTEGER_TOO, dtypes=NUMERIC)
def unary_numeric(ctx: EmitContext) -> None:
    _same_layout(ctx, INTEGER_TOO[ctx.op_type])


def _elu_like(x: tf.Tensor, alpha: float, scale: float = 1.0) -> tf.Tensor:
    """scale * (x if x > 0 else alpha * (exp(x) - 1))."""
    if alpha == 1.0 and scale == 1.0:
        return tf.nn.elu(x)
    negative = _f(alpha) * (tf.exp(tf.minimum(x, 0.0)) - 1.0)
    return _f(scale) * (tf.nn.relu(x) + negative)


@emits("Elu", dtypes=FLOAT)
def elu(ctx: EmitContext) -> None:
    _same_layout(ctx, lambda x: _elu_like(x, float(ctx.attr("alpha", 1.0))))


@emits("Selu", dtypes=FLOAT)
def selu(ctx: EmitContext) -> None:
    alpha, gamma = float(ctx.attr("alpha", 1.67326319217681884765625)), float(ctx.attr("gamma", 1.05070102214813232421875))
    _same_layout(ctx, lambda x: _elu_like(x, alpha, gamma))


@emits("Celu", dtypes=FLOAT)
def celu(ctx: EmitContext) -> None:
    alpha = float(ctx.attr("alpha", 1.0))
    # max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
    _same_layout(ctx, lambda x: tf.nn.relu(x) + _f(alpha) * (tf.exp(tf.minimum(x, 0.0) * _f(1 / alpha)) - 1.0))


@emits("ThresholdedRelu", dtypes=FLOAT)
def thresholded_relu(ctx: EmitContext) -> None:
    alpha = _f(ctx.attr("alpha", 1.0))
    _same_layout(ctx, lambda x: tf.where(x > alpha, x, tf.zeros_like(x)))


@emits("Shrink", dtypes=NUMERIC)
def shrink(ctx: EmitContext) -> None:
    lambd, bias = float(ctx.attr("lambd", 0.5)), float(ctx.attr("bias", 0.0))

    def function(x):
        dtype = x.dtype.as_numpy_dtype
        zero = tf.zeros_like(x)
        low = tf.where(x < dtype(-lambd), x + dtype(bias), zero)
        return tf.where(x > dtype(lambd), x - dtype(bias), low)

    _same_layout(ctx, function)


@emits("Swish", dtypes=FLOAT)
def swish(ctx: EmitContext) -> None:
    alpha = _f(ctx.attr("alpha", 1.0))
    _same_layout(ctx, lambda x: x * tf.sigmoid(x * alpha) if alpha != 1 else x * tf.sigmoid(x))


@emits("LeakyRelu", dtypes=FLOAT)
def leaky_relu(ctx: EmitContext) -> None:
    alpha = float(ctx.attr("alpha", 0.01))
    _same_layout(ctx, lambda x: tf.nn.leaky_relu(x, alpha))


@emits("PRelu", dtypes=NUMERIC)
def prelu(ctx: EmitContext) -> None:
    (x, slope), perm = aligned(ctx, [0, 1])
    if ctx.dtype(0).is_integer:
        ctx.set(tf.where(x < 0, x * slope, x), perm)
        return
    # The form TFLite's converter recognises as PRELU, whose alpha has no batch dim: a slope padded to the
    # input's rank would leave NEG, RELU, MUL and ADD instead (and four float ops in an int8 file).
    rank = len(x.shape)
    if len(slope.shape) == rank and rank > 1 and slope.shape[0] == 1:
        slope = slope[0]
    ctx.set(tf.nn.relu(x) + (-slope) * tf.nn.relu(-x), perm)


@emits("Clip", dtypes=NUMERIC)
def clip(ctx: EmitContext) -> None:
    """Bounds from attributes (old opsets) or inputs, constant or computed at run time."""
    low, high = ctx.attr("min"), ctx.attr("max")
    dtype = ctx.dtype(0).as_numpy_dtype
    for index, name in ((1, "low"), (2, "high")):
        if ctx.has_input(index):
            static = ctx.static(index)
            value = np.asarray(static).astype(dtype).reshape(()) if static is not None else \
                tf.reshape(tf.cast(ctx.plain(index), dtype), [])
            low, high = (value, high) if name == "low" else (low, value)
    constant = all(b is None or isinstance(b, (float, int, np.generic, np.ndarray)) for b in (low, high))
    if constant and low is not None and float(low) == 0.0 and high is not None and float(high) == 6.0 \
            and dtype == np.float32:
        function = tf.nn.relu6
    elif constant and low is not None and float(low) == 0.0 and high is None and dtype == np.float32:
        function = tf.nn.relu
    else:
        def function(x):
            if low is not None:
                x = tf.maximum(x, np.asarray(low, dtype) if not isinstance(low, tf.Tensor) else low)
            if high is not None:
                x = tf.minimum(x, np.asarray(high, dtype) if not isinstance(high, tf.Tensor) else high)
            return x
    _same_layout(ctx, function)


@emits("HardSigmoid", dtypes=FLOAT)
def hard_sigmoid(ctx: EmitContext) -> None:
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    # max(0, min(1, a*x + b)) = relu6(6a*x + 6b) / 6, one fused activation.
    _same_layout(ctx, lambda x: tf.nn.relu6(x * np.float32(6 * alpha) + np.float32(6 * beta)) * np.float32(1 / 6))


@emits("HardSwish", dtypes=FLOAT)
def hard_swish(ctx: EmitContext) -> None:
    # The form TFLite's converter recognises as HARD_SWISH.
    _same_layout(ctx, lambda x: x * tf.nn.relu6(x + np.float32(3.0)) * np.float32(1 / 6))


@emits("Gelu", dtypes=FLOAT)
def gelu(ctx: EmitContext) -> None:
    approximate = ctx.text("approximate", "none")
    _same_layout(ctx, lambda x: tf.nn.gelu(x, approximate=approximate == "tanh"))


# Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): TFLite has no ERF kernel.
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: tf.Tensor) -> tf.Tensor:
    magnitude = tf.abs(x)
    t = 1.0 / (1.0 + np.float32(ERF_P) * magnitude)
    poly = np.float32(ERF_A[4])
    for a in reversed(ERF_A[:4]):
        poly = poly * t + np.float32(a)
    y = 1.0 - poly * t * tf.exp(-magnitude * magnitude)
    return tf.sign(x) * y


@emits("Erf", dtypes=FLOAT)
def erf_op(ctx: EmitContext) -> None:
    _same_layout(ctx, erf)


def _softmax(ctx: EmitContext, log: bool) -> None:
    rank = ctx.rank(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", -1 if ctx.opset >= 13 else 1)), rank)
    if ctx.opset < 13 and axis != rank - 1:
        _coerced_softmax(ctx, axis, log)
        return
    perm = ctx.perm(0)
    x = ctx.tensor(0)
    position = layout.held_axis(perm, axis)
    if position == rank - 1:  # SOFTMAX / LOG_SOFTMAX take the last axis
        ctx.set(tf.nn.log_softmax(x) if log else tf.nn.softmax(x), perm)
        return
    # Another axis: spelled out with reductions where the tensor is held, rather than transposing
    # it there and back.
    shifted = x - tf.reduce_max(x, position, keepdims=True)
    total = tf.reduce_sum(tf.exp(shifted), position, keepdims=True)
    ctx.set(shifted - tf.math.log(total) if log else tf.exp(shifted) / total, perm)


@emits("Softmax", dtypes=FLOAT)
def softmax(ctx: EmitContext) -> None:
    _softmax(ctx, log=False)


@emits("LogSoftmax", dtypes=FLOAT)
def log_softmax(ctx: EmitContext) -> None:
    _softmax(ctx, log=True)


def _coerced_softmax(ctx: EmitContext, axis: int, log: bool) -> None:
    """Opset < 13: the input is flattened to [prod(dims[:axis]), prod(dims[axis:])] around the softmax."""
    x = ctx.plain(0)
    dims = ctx.ir_dims(0)
    flat = tf.reshape(x, tf.stack([-1, tf.reduce_prod(tf.shape(x)[axis:])]) if None in ctx.ir_shape(0)[axis:]
                      else [-1, int(np.prod(dims[axis:]))])
    y = tf.nn.log_softmax(flat) if log else tf.nn.softmax(flat)
    ctx.set(tf.reshape(y, tf.shape(x)) if None in ctx.ir_shape(0) else tf.reshape(y, dims))


@emits("Hardmax", dtypes=FLOAT)
def hardmax(ctx: EmitContext) -> None:
    """One at the first maximum along the axis: ONE_HOT of ARG_MAX, where the value is held."""
    rank = ctx.rank(0)
    if ctx.opset < 13:
        raise ctx.unsupported("opset < 13 (coerced to 2-D)")
    axis = layout.normalize_axis(int(ctx.attr("axis", -1)), rank)
    perm = ctx.perm(0)
    position = layout.held_axis(perm, axis)
    x = ctx.tensor(0)
    depth = x.shape[position] if x.shape[position] is not None else tf.shape(x)[position]
    index = tf.argmax(x, axis=position, output_type=tf.int32)
    ctx.set(tf.one_hot(index, depth, axis=position, dtype=x.dtype), perm)

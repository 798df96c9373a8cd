"""Element-wise activations and math: layout-agnostic, so each output keeps its input's arrangement."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned
from qconvert.backends.tflite.registry import emits

UNARY = {
    "Relu": tf.nn.relu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh, "Exp": tf.exp, "Log": tf.math.log,
    "Abs": tf.abs, "Neg": tf.negative, "Sqrt": tf.sqrt, "Reciprocal": tf.math.reciprocal,
    "Floor": tf.floor, "Ceil": tf.math.ceil, "Round": tf.round, "Sin": tf.sin, "Cos": tf.cos,
    "Sign": tf.sign, "Elu": tf.nn.elu,
}


def _same_layout(ctx: EmitContext, function) -> None:
    ctx.set(function(ctx.tensor(0)), ctx.perm(0))


@emits(*UNARY)
def unary(ctx: EmitContext) -> None:
    if ctx.op_type == "Elu" and float(ctx.attr("alpha", 1.0)) != 1.0:
        raise ctx.unsupported("alpha != 1")
    _same_layout(ctx, UNARY[ctx.op_type])


@emits("LeakyRelu")
def leaky_relu(ctx: EmitContext) -> None:
    alpha = float(ctx.attr("alpha", 0.01))
    _same_layout(ctx, lambda x: tf.nn.leaky_relu(x, alpha))


@emits("PRelu")
def prelu(ctx: EmitContext) -> None:
    # The form TFLite's converter recognises as PRELU.
    (x, slope), perm = aligned(ctx, [0, 1])
    ctx.set(tf.nn.relu(x) + (-slope) * tf.nn.relu(-x), perm)


@emits("Clip")
def clip(ctx: EmitContext) -> None:
    low, high = ctx.attr("min"), ctx.attr("max")
    if ctx.has_input(1):
        low = float(ctx.const(1, "min"))
    if ctx.has_input(2):
        high = float(ctx.const(2, "max"))
    if low == 0.0 and high == 6.0:
        function = tf.nn.relu6
    elif low == 0.0 and high is None:
        function = tf.nn.relu
    else:
        def function(x):
            if low is not None:
                x = tf.maximum(x, np.array(low, x.dtype.as_numpy_dtype))
            if high is not None:
                x = tf.minimum(x, np.array(high, x.dtype.as_numpy_dtype))
            return x
    _same_layout(ctx, function)


@emits("HardSigmoid")
def hard_sigmoid(ctx: EmitContext) -> None:
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    # max(0, min(1, a*x + b)) = relu6(6a*x + 6b) / 6, one fused activation.
    _same_layout(ctx, lambda x: tf.nn.relu6(x * np.float32(6 * alpha) + np.float32(6 * beta)) * np.float32(1 / 6))


@emits("HardSwish")
def hard_swish(ctx: EmitContext) -> None:
    # The form TFLite's converter recognises as HARD_SWISH.
    _same_layout(ctx, lambda x: x * tf.nn.relu6(x + np.float32(3.0)) * np.float32(1 / 6))


@emits("Gelu")
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


@emits("Erf")
def erf_op(ctx: EmitContext) -> None:
    _same_layout(ctx, erf)


def _softmax(ctx: EmitContext, log: bool) -> None:
    rank = ctx.rank(0)
    axis = layout.normalize_axis(int(ctx.attr("axis", -1 if ctx.opset >= 13 else 1)), rank)
    if ctx.opset < 13 and axis != rank - 1:
        raise ctx.unsupported("opset < 13 softmax over more than the last axis")
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


@emits("Softmax")
def softmax(ctx: EmitContext) -> None:
    _softmax(ctx, log=False)


@emits("LogSoftmax")
def log_softmax(ctx: EmitContext) -> None:
    _softmax(ctx, log=True)

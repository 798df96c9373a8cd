"""IsInf. The TFLite converter stores an infinite constant as the largest finite float (x + inf gives
3.4e38, x == inf is never true: measured), so infinities are found by comparing past FLT_MAX instead."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits

LARGEST = np.float32(np.finfo(np.float32).max)


@emits("IsInf", dtypes=FLOAT | {"float16"})
def is_inf(ctx: EmitContext) -> None:
    x = ctx.tensor(0)
    x = x if x.dtype == tf.float32 else tf.cast(x, tf.float32)  # float16 has no comparison kernels
    positive, negative = bool(ctx.attr("detect_positive", 1)), bool(ctx.attr("detect_negative", 1))
    if positive and negative:
        y = tf.greater(tf.abs(x), LARGEST)
    elif positive:
        y = tf.greater(x, LARGEST)
    elif negative:
        y = tf.less(x, -LARGEST)
    else:  # detects nothing: false everywhere, in x's shape
        y = tf.logical_and(tf.greater(x, LARGEST), tf.less(x, -LARGEST))
    ctx.set(y, ctx.perm(0))

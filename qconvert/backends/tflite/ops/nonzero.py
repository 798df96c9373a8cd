"""NonZero: WHERE gives the [count, rank] coordinates of the true elements (count known only at run time);
ONNX wants them as [rank, count], on the IR's arrangement."""

from __future__ import annotations

import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import MOVABLE, emits

WIDENED = frozenset({"int8", "uint8", "int16", "uint16"})  # compared as int32 (NOT_EQUAL takes no 8-bit ints)


@emits("NonZero", dtypes=MOVABLE | WIDENED)
def nonzero(ctx: EmitContext) -> None:
    x = ctx.plain(0)
    if x.dtype.name in WIDENED:
        x = tf.cast(x, tf.int32)
    condition = x if x.dtype == tf.bool else tf.not_equal(x, tf.zeros((), x.dtype))  # NaN counts as non-zero
    ctx.set(tf.transpose(tf.cast(tf.where(condition), tf.int32)))

"""MaxUnpool: each input value goes to its index in the unpooled tensor flattened (as MaxPool's second output
counts them, over N, C and the spatial dims), zeros elsewhere; a larger output_shape pads the ends with zeros,
as ONNX's reference does.

Overlapping pooling windows give one index twice (with the same value), and SCATTER_ND adds duplicates, so
the values are placed with UNSORTED_SEGMENT_MAX and the positions no index reaches are set to zero with a
SCATTER_ND of ones (a count, where adding is right)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits


def _product(dims: list):
    total = 1
    for d in dims:
        total = total * d
    return total


def _vector(dims: list):
    return np.asarray(dims, np.int32) if all(isinstance(d, int) for d in dims) else tf.stack(
        [tf.cast(d, tf.int32) for d in dims])


@emits("MaxUnpool", dtypes=FLOAT)
def max_unpool(ctx: EmitContext) -> None:
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    spatial = len(kernel)
    strides = [int(s) for s in ctx.attr("strides", [1] * spatial)]
    pads = [int(p) for p in ctx.attr("pads", [0] * (2 * spatial))]
    dims = ctx.ir_dims(0)
    unpooled = dims[:2] + [(size - 1) * stride - pads[i] - pads[spatial + i] + k
                           for i, (size, stride, k) in enumerate(zip(dims[2:], strides, kernel))]
    total = _product(unpooled)
    values = tf.reshape(ctx.plain(0), [-1])
    indices = tf.reshape(tf.cast(ctx.plain(1), tf.int32), [-1])
    placed = tf.math.unsorted_segment_max(values, indices, total)
    hits = tf.scatter_nd(indices[:, None], tf.ones_like(indices), _vector([total]))
    y = tf.reshape(tf.where(hits > 0, placed, tf.zeros_like(placed)), _vector(unpooled))
    if ctx.has_input(2):
        y = _pad_to(ctx, y, unpooled)
    ctx.set(y)


def _pad_to(ctx: EmitContext, y: tf.Tensor, unpooled: list) -> tf.Tensor:
    """Zeros after the end of each dim, up to output_shape (a run-time output_shape pads by run-time amounts)."""
    wanted = ctx.vector(2)
    if isinstance(wanted, np.ndarray) and all(isinstance(d, int) for d in unpooled):
        grow = [int(w) - u for w, u in zip(wanted, unpooled)]
        if any(g < 0 for g in grow):
            raise ctx.unsupported(f"output_shape {wanted.tolist()} smaller than the unpooled shape {unpooled}")
        return tf.pad(y, [[0, g] for g in grow]) if any(grow) else y
    grow = tf.convert_to_tensor(wanted, tf.int32) - _vector(unpooled)
    return tf.pad(y, tf.stack([tf.zeros_like(grow), grow], axis=1))

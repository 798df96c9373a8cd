"""MaxPool, AveragePool and the global pools on channels-last tensors (1-D pools run as 2-D, height 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import onnx_pads, pad_spatial, padding_mode
from qconvert.backends.tflite.registry import FLOAT, emits


@dataclass
class Window:
    x: tf.Tensor  # N, H, W, C
    sizes: list  # H, W
    kernel: list
    strides: list
    pads: list  # (begin, end) per spatial dim, ceil_mode's extra end padding included
    declared: list  # the pads the node declares
    one_d: bool


def _window(ctx: EmitContext) -> Window:
    rank = ctx.rank(0)
    if rank not in (3, 4):
        raise ctx.unsupported(f"{rank - 2}-D pooling")
    if any(d != 1 for d in ctx.attr("dilations", [1] * (rank - 2))):
        raise ctx.unsupported("dilations > 1")
    x = ctx.channels_last(0)
    one_d = rank == 3
    if one_d:
        x = tf.expand_dims(x, 1)
    sizes = x.shape.as_list()[1:3]
    kernel = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides", [1] * len(kernel)))
    declared = onnx_pads(ctx, sizes[-len(kernel):], kernel, strides, [1] * len(kernel))
    if one_d:
        kernel, strides, declared = [1, *kernel], [1, *strides], [(0, 0), *declared]
    pads = declared
    if ctx.attr("ceil_mode", 0):
        if any(s is None for s in sizes):
            raise ctx.unsupported("ceil_mode with unknown spatial size")
        pads = [(b, e + _ceil_extra(s, k, st, b, e)) for s, k, st, (b, e) in zip(sizes, kernel, strides, pads)]
    return Window(x, sizes, kernel, strides, pads, declared, one_d)


def _set(ctx: EmitContext, y: tf.Tensor, window: Window) -> None:
    if window.one_d:
        y = tf.squeeze(y, [1])
    ctx.set(y, layout.channels_last(ctx.rank(0)))


def _ceil_extra(size: int, kernel: int, stride: int, begin: int, end: int) -> int:
    """End padding that ceil_mode adds; the last window must still start inside input or begin pad."""
    out = math.ceil((size + begin + end - kernel) / stride) + 1
    if (out - 1) * stride >= size + begin:
        out -= 1
    return max((out - 1) * stride + kernel - (size + begin + end), 0)


@emits("MaxPool", dtypes=FLOAT)
def max_pool(ctx: EmitContext) -> None:
    if ctx.output_count > 1:
        raise ctx.unsupported("Indices output")
    w = _window(ctx)
    x = w.x
    padding = padding_mode(w.pads, w.sizes, w.kernel, w.strides, [1, 1])
    if padding is None:
        x, padding = pad_spatial(x, w.pads, float(np.finfo(np.float32).min)), "VALID"
    _set(ctx, tf.nn.max_pool2d(x, w.kernel, w.strides, padding), w)


@emits("AveragePool", dtypes=FLOAT)
def average_pool(ctx: EmitContext) -> None:
    w = _window(ctx)
    include_pad = bool(ctx.attr("count_include_pad", 0))
    padding = padding_mode(w.pads, w.sizes, w.kernel, w.strides, [1, 1])
    if padding == "VALID" or (padding == "SAME" and not include_pad):
        _set(ctx, tf.nn.avg_pool2d(w.x, w.kernel, w.strides, padding), w)
        return
    if any(s is None for s in w.sizes):
        raise ctx.unsupported("explicit pads with unknown spatial size")
    # Zero padding counts the pads in every window; rescale each output by the window's true count.
    y = tf.nn.avg_pool2d(pad_spatial(w.x, w.pads), w.kernel, w.strides, "VALID")
    counts = [_counted(s, k, st, b, e, d, include_pad)
              for s, k, st, (b, e), (_, d) in zip(w.sizes, w.kernel, w.strides, w.pads, w.declared)]
    area = w.kernel[0] * w.kernel[1]
    counted = np.outer(*counts)
    if not np.allclose(counted, area):
        y = y * (area / counted).astype(np.float32)[None, :, :, None]
    _set(ctx, y, w)


def _counted(size: int, kernel: int, stride: int, begin: int, end: int, declared_end: int,
             include_pad: bool) -> np.ndarray:
    """Per output position along one dim: how many elements ONNX divides by."""
    out = (size + begin + end - kernel) // stride + 1
    starts = np.arange(out) * stride - begin
    if include_pad:  # declared pads count, the extra end padding of ceil_mode does not
        low, high = -begin, size + declared_end
    else:
        low, high = 0, size
    return np.minimum(starts + kernel, high) - np.maximum(starts, low)


def _global(ctx: EmitContext, reduce) -> None:
    rank = ctx.rank(0)
    x = ctx.channels_last(0)
    ctx.set(reduce(x, list(range(1, rank - 1)), keepdims=True), layout.channels_last(rank))


@emits("GlobalAveragePool", dtypes=FLOAT)
def global_average_pool(ctx: EmitContext) -> None:
    _global(ctx, tf.reduce_mean)


@emits("GlobalMaxPool", dtypes=FLOAT)
def global_max_pool(ctx: EmitContext) -> None:
    _global(ctx, tf.reduce_max)


@emits("GlobalLpPool", dtypes=FLOAT)
def global_lp_pool(ctx: EmitContext) -> None:
    p = float(ctx.attr("p", 2))
    _global(ctx, lambda x, axes, keepdims: tf.pow(tf.reduce_sum(tf.pow(tf.abs(x), p), axes, keepdims=keepdims),
                                                   np.float32(1 / p)))


@emits("LpPool", dtypes=FLOAT)
def lp_pool(ctx: EmitContext) -> None:
    """(sum over the window of |x|^p)^(1/p): an average pool of |x|^p times the window's area."""
    if ctx.attr("ceil_mode", 0):
        raise ctx.unsupported("ceil_mode")
    w = _window(ctx)
    p = float(ctx.attr("p", 2))
    powered = tf.pow(tf.abs(w.x), np.float32(p))
    padding = padding_mode(w.pads, w.sizes, w.kernel, w.strides, [1, 1])
    if padding is None:
        powered, padding = pad_spatial(powered, w.pads), "VALID"
    elif padding == "SAME":
        powered, padding = pad_spatial(powered, w.pads), "VALID"  # zeros count: sums, not averages
    area = np.float32(w.kernel[0] * w.kernel[1])
    y = tf.nn.avg_pool2d(powered, w.kernel, w.strides, padding) * area
    _set(ctx, tf.pow(y, np.float32(1 / p)), w)

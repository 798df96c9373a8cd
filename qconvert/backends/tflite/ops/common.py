"""Helpers shared by op families: broadcasting held values together, spatial padding, axes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, narrow, rearrange


def aligned(ctx: EmitContext, indices: Sequence[int]) -> tuple[list, layout.Perm]:
    """Inputs made ready for a broadcasting op, all in one arrangement, and that arrangement.

    The arrangement is that of the highest-rank run-time input, so an NHWC activation plus an NCHW
    bias constant reshapes the constant, never transposes the activation.
    """
    rank = max(ctx.rank(i) for i in indices)
    perm = layout.identity(rank)
    for i in indices:
        held = ctx.held(i)
        if not held.is_const and held.rank == rank:
            perm = held.perm
            if perm != layout.identity(rank):
                break
    result = []
    for i in indices:
        held = ctx.held(i)
        pad = rank - held.rank
        if held.is_const:
            array = narrow(held.tensor)
            result.append(array if array.ndim == 0 else array.reshape((1,) * pad + array.shape).transpose(perm))
        elif pad == 0:
            result.append(ctx.tensor(i, perm))
        else:
            tensor = held.tensor
            for _ in range(pad):
                tensor = tf.expand_dims(tensor, 0)
            padded = tuple(range(pad)) + tuple(p + pad for p in held.perm)
            result.append(tensor if padded == perm else rearrange(tensor, padded, perm))
    return result, perm


def same_dtype(values: list, dtype: tf.DType) -> list:
    """Constants cast to the run-time operand's dtype (ONNX allows no mixing, but int64 was narrowed)."""
    return [v.astype(dtype.as_numpy_dtype) if isinstance(v, np.ndarray) else v for v in values]


def runtime_dtype(ctx: EmitContext, indices: Sequence[int]) -> tf.DType:
    for i in indices:
        if not ctx.held(i).is_const:
            return ctx.dtype(i)
    return ctx.dtype(indices[0])


def axes_attr_or_input(ctx: EmitContext, input_index: int) -> list[int] | None:
    """Axes given as an attribute (older opsets) or as an input (newer ones); None when absent."""
    axes = ctx.attr("axes")
    if axes is None and ctx.has_input(input_index):
        axes = ctx.const(input_index, "axes").tolist()
    return None if axes is None else [int(a) for a in np.atleast_1d(axes)]


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding for one spatial dim: the extra pixel goes at the end."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def onnx_pads(ctx: EmitContext, sizes: Sequence[int | None], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) per spatial dim from pads/auto_pad."""
    auto_pad = ctx.text("auto_pad", "NOTSET")
    spatial = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(s is None for s in sizes):
            raise ctx.unsupported(f"auto_pad {auto_pad} with unknown spatial size")
        pads = [same_pads(s, k, st, d) for s, k, st, d in zip(sizes, kernel, strides, dilations)]
        return pads if auto_pad == "SAME_UPPER" else [(e, b) for b, e in pads]
    if auto_pad == "VALID":
        return [(0, 0)] * spatial
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    return list(zip(pads[:spatial], pads[spatial:]))


def padding_mode(pads: Sequence[tuple[int, int]], sizes: Sequence[int | None], kernel: Sequence[int],
                 strides: Sequence[int], dilations: Sequence[int]) -> str | None:
    """'VALID' or 'SAME' when TF's own padding equals the ONNX pads, else None (pad explicitly)."""
    if all(b == 0 and e == 0 for b, e in pads):
        return "VALID"
    if any(s is None for s in sizes):
        return None
    same = [same_pads(s, k, st, d) for s, k, st, d in zip(sizes, kernel, strides, dilations)]
    return "SAME" if list(map(tuple, pads)) == same else None


def pad_spatial(tensor: tf.Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0) -> tf.Tensor:
    """Explicit padding of the spatial dims of a channels-last tensor."""
    return tf.pad(tensor, [[0, 0], *[[b, e] for b, e in pads], [0, 0]], constant_values=value)

"""Gemm and MatMul: constant right-hand sides become FULLY_CONNECTED, others BATCH_MATMUL."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits


def _operand(ctx: EmitContext, index: int) -> tuple[tf.Tensor, bool]:
    """An operand as held when that differs from the IR only by its last two axes (a matmul flag)."""
    rank, perm = ctx.rank(index), ctx.perm(index)
    if index == 0 and ctx.held(0).columns is not None and ctx.held(1).is_const and ctx.rank(1) == 2:
        return ctx.held(0).tensor, False  # _dense_weights reorders the weight rows to match
    swapped = layout.identity(rank - 2) + (rank - 1, rank - 2) if rank >= 2 else None
    if perm == swapped:
        return ctx.tensor(index), True
    return ctx.plain(index), False


def _dense_weights(ctx: EmitContext, weights: np.ndarray) -> np.ndarray:
    """[K, N] weights, rows reordered when A was flattened channels-last (see shape.py)."""
    columns = ctx.held(0).columns
    return weights if columns is None else weights[columns]


@emits("Gemm", dtypes=FLOAT)
def gemm(ctx: EmitContext) -> None:
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    trans_a, trans_b = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    a, a_swapped = _operand(ctx, 0)
    trans_a ^= a_swapped
    if ctx.held(1).is_const:
        weights = ctx.const(1, "weights").astype(np.float32)
        weights = _dense_weights(ctx, weights.T if trans_b else weights) * np.float32(alpha)
        y = tf.matmul(a, weights, transpose_a=trans_a)
    else:
        b, b_swapped = _operand(ctx, 1)
        y = tf.matmul(a, b, transpose_a=trans_a, transpose_b=trans_b ^ b_swapped)
        if alpha != 1.0:
            y = y * np.float32(alpha)
    if ctx.has_input(2):
        if ctx.held(2).is_const:
            bias = ctx.const(2, "bias").astype(np.float32) * np.float32(beta)
            per_column = bias.size == y.shape[-1] and bias.shape[-1:] == (bias.size,)
            # A per-column bias as BiasAdd fuses into FULLY_CONNECTED.
            y = tf.nn.bias_add(y, bias.reshape(-1)) if per_column else y + bias
        else:
            c = ctx.plain(2)
            y = y + (c * np.float32(beta) if beta != 1.0 else c)
    ctx.set(y)


@emits("MatMul", dtypes=FLOAT)
def matmul(ctx: EmitContext) -> None:
    a_rank, b_rank = ctx.rank(0), ctx.rank(1)
    a, trans_a = _operand(ctx, 0) if a_rank >= 2 else (ctx.plain(0), False)
    if ctx.held(1).is_const and b_rank == 2 and not trans_a:
        # x @ W with constant 2-D W: the converter makes it FULLY_CONNECTED (keeping the leading dims).
        weights = _dense_weights(ctx, ctx.const(1, "weights").astype(np.float32))
        y = tf.matmul(a if a_rank > 1 else a[None, :], weights)
        ctx.set(y if a_rank > 1 else y[0])
        return
    b, trans_b = _operand(ctx, 1) if b_rank >= 2 else (ctx.plain(1), False)
    if a_rank == 1:
        a = a[None, :]
    if b_rank == 1:
        b = b[:, None]
    y = tf.matmul(a, b, transpose_a=trans_a, transpose_b=trans_b)
    if a_rank == 1:
        y = tf.squeeze(y, [-2])
    if b_rank == 1:
        y = tf.squeeze(y, [-1])
    ctx.set(y)

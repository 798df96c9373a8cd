"""Einsum of one or two operands as transposes, reshapes, REDUCE_SUM and BATCH_MATMUL.

Letters are classed per operand: batch (both operands and the output), contracted (both, not the output),
kept (one operand and the output) and summed (one operand only, summed first). Repeated letters within
one operand (diagonals) and ellipses are refused.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits


def _parse(ctx: EmitContext, count: int) -> tuple[list[str], str]:
    equation = ctx.text("equation", "").replace(" ", "")
    if "." in equation:
        raise ctx.unsupported("ellipsis")
    inputs, _, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != count or count not in (1, 2):
        raise ctx.unsupported(f"{count} operands")
    if "->" not in equation:  # implicit output: the letters seen once, in alphabetical order
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if any(len(set(t)) != len(t) for t in terms):
        raise ctx.unsupported("a repeated letter within one operand (a diagonal)")
    return terms, output


def _dims(x: tf.Tensor) -> list:
    static, dynamic = x.shape.as_list(), tf.shape(x)
    return [d if d is not None else dynamic[i] for i, d in enumerate(static)]


def _product(dims: list):
    result = 1
    for d in dims:
        result = result * d
    return result


def _shape(dims: list):
    return dims if all(isinstance(d, int) for d in dims) else tf.stack([tf.cast(d, tf.int32) for d in dims])


def _sum_own(x: tf.Tensor, term: str, keep: set[str]) -> tuple[tf.Tensor, str]:
    """Sum the letters no one else needs."""
    summed = [i for i, c in enumerate(term) if c not in keep]
    if summed:
        x = tf.reduce_sum(x, summed)
    return x, "".join(c for c in term if c in keep)


def _arrange(x: tf.Tensor, term: str, order: str) -> tf.Tensor:
    perm = [term.index(c) for c in order]
    return x if perm == list(range(len(perm))) else tf.transpose(x, perm)


@emits("Einsum", dtypes=FLOAT)
def einsum(ctx: EmitContext) -> None:
    count = ctx.input_count
    terms, output = _parse(ctx, count)
    if not output:
        raise ctx.unsupported("a scalar result")
    if count == 1:
        x, term = _sum_own(ctx.plain(0), terms[0], set(output))
        ctx.set(_arrange(x, term, output))
        return
    a, b = ctx.plain(0), ctx.plain(1)
    a, ta = _sum_own(a, terms[0], set(output) | set(terms[1]))
    b, tb = _sum_own(b, terms[1], set(output) | set(terms[0]))
    batch = [c for c in ta if c in tb and c in output]
    contracted = [c for c in ta if c in tb and c not in output]
    kept_a = [c for c in ta if c not in tb]
    kept_b = [c for c in tb if c not in ta]
    a = _arrange(a, ta, "".join(batch + kept_a + contracted))
    b = _arrange(b, tb, "".join(batch + contracted + kept_b))
    da, db = _dims(a), _dims(b)
    nb = len(batch)
    for i in range(nb):
        if isinstance(da[i], int) and isinstance(db[i], int) and da[i] != db[i]:
            raise ctx.unsupported("broadcast batch letters")
    batch_dims = da[:nb]
    dims_a = da[nb:nb + len(kept_a)]
    dims_b = db[nb + len(contracted):]
    k = _product(da[nb + len(kept_a):])
    m, n = _product(dims_a), _product(dims_b)
    a = tf.reshape(a, _shape([*batch_dims, m, k]))
    b = tf.reshape(b, _shape([*batch_dims, k, n]))
    y = tf.matmul(a, b)
    y = tf.reshape(y, _shape([*batch_dims, *dims_a, *dims_b]))
    ctx.set(_arrange(y, "".join(batch + kept_a + kept_b), output))

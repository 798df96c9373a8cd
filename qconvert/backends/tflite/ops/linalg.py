"""Det: TFLite has no determinant kernel. For small static square matrices it is the exact Laplace expansion
along the rows, each minor (a set of columns of the bottom rows) computed once: about n * 2**n MULs."""

from __future__ import annotations

import functools

import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.registry import FLOAT, emits

# 6x6 takes 192 multiplies; beyond that the expansion grows as 2**n and an LU path would be needed.
MAX_ORDER = 6


def determinant(x: tf.Tensor, order: int) -> tf.Tensor:
    """det of the last two axes of x (order x order) by cofactor expansion."""
    entries = [tf.unstack(row, axis=-1) for row in tf.unstack(x, axis=-2)]

    @functools.cache
    def minor(columns: tuple[int, ...]) -> tf.Tensor:
        """The determinant of the last len(columns) rows restricted to ``columns``."""
        row = entries[order - len(columns)]
        if len(columns) == 1:
            return row[columns[0]]
        total = None
        for position, column in enumerate(columns):
            term = row[column] * minor(columns[:position] + columns[position + 1:])
            if total is None:
                total = term
            else:
                total = total - term if position % 2 else total + term
        return total

    return minor(tuple(range(order)))


@emits("Det", dtypes=FLOAT)
def det(ctx: EmitContext) -> None:
    rows, columns = ctx.ir_shape(0)[-2:]
    if rows is None or rows != columns or rows == 0:
        raise ctx.unsupported(f"matrices of size {rows}x{columns}: the expansion needs a static square size")
    if rows > MAX_ORDER:
        raise ctx.unsupported(f"{rows}x{rows} matrices: the exact expansion is emitted up to {MAX_ORDER}x{MAX_ORDER}")
    ctx.set(determinant(ctx.plain(0), rows))

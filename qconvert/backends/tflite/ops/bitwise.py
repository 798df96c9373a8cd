"""Bit ops on integers: BitwiseXor, BitwiseAnd, BitwiseOr, BitwiseNot, BitShift.

TFLite's builtins have BITWISE_XOR and RIGHT_SHIFT (8/16/32-bit, signed and unsigned) but no AND, OR,
NOT or left shift. Those are written as exact compositions on the int32 bit pattern (CAST between integer
types wraps, measured), with arithmetic that never overflows:
- a & b per 16-bit half, where a + b = (a ^ b) + 2 (a & b) holds without overflow;
- a | b = (a ^ b) + (a & b) (disjoint bits: no carry);
- ~a = a ^ all-ones;
- a << s from the low 31 - s bits times 2**s, plus the bit that lands in the sign bit.
64-bit integers are carried as int32 (context.NARROWED): their bits beyond 32 are not kept.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import aligned, runtime_dtype, same_dtype
from qconvert.backends.tflite.registry import emits

# The carried dtypes BITWISE_XOR and RIGHT_SHIFT take (and that CAST moves to and from int32).
INTEGERS = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32"})

INT32_MIN = np.int32(-(2**31))


def _operands(ctx: EmitContext) -> tuple[tf.Tensor, tf.Tensor, tuple, tf.DType]:
    (a, b), perm = aligned(ctx, [0, 1])
    dtype = runtime_dtype(ctx, [0, 1])
    a, b = (tf.convert_to_tensor(v) for v in same_dtype([a, b], dtype))
    return a, b, perm, dtype


def _bits32(value: tf.Tensor) -> tf.Tensor:
    """The value's bit pattern as int32: narrower integers sign- or zero-extended, uint32 reinterpreted."""
    return value if value.dtype == tf.int32 else tf.cast(value, tf.int32)


def _and_halves(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a & b for int32 values within 17 bits: (a + b - (a ^ b)) / 2, exact and without overflow."""
    return tf.bitwise.right_shift(a + b - tf.bitwise.bitwise_xor(a, b), 1)


def bitwise_and32(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a & b on int32 bit patterns, one 16-bit half at a time (the high half signed, the low one not)."""
    high_a, high_b = tf.bitwise.right_shift(a, 16), tf.bitwise.right_shift(b, 16)
    low_a, low_b = a - high_a * 65536, b - high_b * 65536
    return _and_halves(high_a, high_b) * 65536 + _and_halves(low_a, low_b)


def _back(value: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    return value if value.dtype == dtype else tf.cast(value, dtype)


@emits("BitwiseXor", dtypes=INTEGERS)
def bitwise_xor(ctx: EmitContext) -> None:
    a, b, perm, _ = _operands(ctx)
    ctx.set(tf.bitwise.bitwise_xor(a, b), perm)


@emits("BitwiseAnd", dtypes=INTEGERS)
def bitwise_and(ctx: EmitContext) -> None:
    a, b, perm, dtype = _operands(ctx)
    ctx.set(_back(bitwise_and32(_bits32(a), _bits32(b)), dtype), perm)


@emits("BitwiseOr", dtypes=INTEGERS)
def bitwise_or(ctx: EmitContext) -> None:
    a, b, perm, dtype = _operands(ctx)
    a, b = _bits32(a), _bits32(b)
    ctx.set(_back(tf.bitwise.bitwise_xor(a, b) + bitwise_and32(a, b), dtype), perm)


@emits("BitwiseNot", dtypes=INTEGERS)
def bitwise_not(ctx: EmitContext) -> None:
    if ctx.node.inputs[0].dtype == ir.DataType.UINT64:
        raise ctx.unsupported("uint64: its complement needs all 64 bits, and 64-bit integers are carried in 32")
    x = ctx.tensor(0)
    ones = np.invert(np.zeros((), x.dtype.as_numpy_dtype))
    ctx.set(tf.bitwise.bitwise_xor(x, ones), ctx.perm(0))


def _width(ctx: EmitContext) -> int:
    """The IR type's bit width (int64 inputs: 64, though carried in 32 bits)."""
    dtype = ctx.node.inputs[0].dtype
    return (np.dtype(dtype.numpy()) if dtype is not None else np.dtype(ctx.dtype(0).as_numpy_dtype)).itemsize * 8


def _powers_of_two(exponent: tf.Tensor) -> tf.Tensor:
    """2**k for int32 k in [0, 30]."""
    return tf.bitwise.right_shift(np.int32(2**30), 30 - exponent)


def shift_left32(x: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
    """x << s on int32 bit patterns for s in [1, 31], modulo 2**32, without an overflowing multiply."""
    kept = tf.math.floormod(x, _powers_of_two(31 - s))  # the low 31 - s bits: they stay below the sign bit
    sign = tf.math.floormod(tf.bitwise.right_shift(x, 31 - s), 2)  # the bit that becomes the sign bit
    return kept * _powers_of_two(tf.minimum(s, 30)) + sign * INT32_MIN  # s = 31 keeps no low bits


@emits("BitShift", dtypes=INTEGERS)
def bit_shift(ctx: EmitContext) -> None:
    """ONNX: a shift by a negative amount or by at least the width gives the sign fill (right) or 0."""
    direction = ctx.text("direction", "")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.unsupported(f"direction {direction!r}")
    x, y, perm, dtype = _operands(ctx)
    width = _width(ctx)
    carried = dtype.size * 8
    amount = _bits32(y)  # a uint32 amount of 2**31 or more reads negative: out of range either way
    in_range = tf.logical_and(amount >= 0, amount < min(width, 32))
    if direction == "RIGHT":
        # Out of range (for a 64-bit type: past the 32 carried bits) shifts by width - 1, then by 1 more:
        # the sign fill of a signed type, 0 of an unsigned one (SELECT takes no 8/16-bit unsigned values).
        first = _back(tf.where(in_range, amount, carried - 1), dtype)
        second = _back(tf.where(in_range, 0, 1), dtype)
        ctx.set(tf.bitwise.right_shift(tf.bitwise.right_shift(x, first), second), perm)
        return
    bits = _bits32(x)  # shifted modulo 2**32; the cast back keeps a narrower type's low bits
    shifted = shift_left32(bits, tf.clip_by_value(amount, 1, 31))
    result = tf.where(tf.equal(amount, 0), bits, tf.where(in_range, shifted, tf.zeros_like(shifted)))
    ctx.set(_back(result, dtype), perm)

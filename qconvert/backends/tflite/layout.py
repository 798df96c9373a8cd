"""Permutation arithmetic for values carried in a layout other than the IR's.

A value is held as ``tensor = transpose(ir_value, perm)``: identity for values kept as the IR has them,
``(0, 2, 3, 1)`` for an NCHW activation carried channels-last. Transposes in the IR become relabelings,
and a real transpose is emitted only where a consumer needs another arrangement.
"""

from __future__ import annotations

from collections.abc import Sequence

Perm = tuple[int, ...]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channels_last(rank: int) -> Perm:
    """The perm that takes N, C, spatial... to N, spatial..., C."""
    return (0, *range(2, rank), 1) if rank >= 3 else identity(rank)


def inverse(perm: Sequence[int]) -> Perm:
    result = [0] * len(perm)
    for position, axis in enumerate(perm):
        result[axis] = position
    return tuple(result)


def between(held: Sequence[int], wanted: Sequence[int]) -> Perm:
    """The tf.transpose perm taking a tensor held in ``held`` to one held in ``wanted``."""
    back = inverse(held)
    return tuple(back[axis] for axis in wanted)


def after_transpose(held: Sequence[int], onnx_perm: Sequence[int]) -> Perm:
    """Held perm of ``Transpose(x, onnx_perm)`` when its output reuses x's tensor unchanged."""
    back = inverse(onnx_perm)
    return tuple(back[axis] for axis in held)


def held_axis(perm: Sequence[int], axis: int) -> int:
    """Where IR axis ``axis`` (already non-negative) sits in the held tensor."""
    return list(perm).index(axis)


def drop_axes(perm: Sequence[int], ir_axes: Sequence[int]) -> Perm:
    """Held perm after the IR axes are removed (Squeeze, reductions without keepdims)."""
    removed = set(ir_axes)
    kept = [axis for axis in perm if axis not in removed]
    order = sorted(kept)
    return tuple(order.index(axis) for axis in kept)


def insert_axes(perm: Sequence[int], ir_axes: Sequence[int]) -> Perm:
    """Held perm after Unsqueeze at output axes ``ir_axes``; new size-1 axes go at the held end."""
    rank = len(perm) + len(ir_axes)
    new = sorted(ir_axes)
    old_to_new = [axis for axis in range(rank) if axis not in new]
    return tuple(old_to_new[axis] for axis in perm) + tuple(new)


def moves_data(shape: Sequence[int | None], transpose_perm: Sequence[int]) -> bool:
    """False when the transpose keeps the memory order (it only moves size-1 axes): a reshape will do."""
    moved = [axis for axis in transpose_perm if shape[axis] != 1]
    return moved != sorted(moved)


def normalize_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis

"""Helpers shared by the op families.

Functions typed with `Tensor`/`List[int]` are called by the emitted program itself: `torch.jit.script`
compiles them into the artifact, so it loads with torch alone. They take run-time shape vectors (int64
tensors computed from the batch) where an op needs Python ints.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import Tensor


def int_list(values: Tensor) -> List[int]:
    """A run-time int64 shape vector (or scalar) as the List[int] that torch's shape arguments take."""
    out: List[int] = values.reshape(-1).tolist()
    return out


def prod(dims: List[int]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def shape_of(x: Tensor) -> Tensor:
    return torch._shape_as_tensor(x)


def string(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def axis_of(axis: int, rank: int | None) -> int:
    """ONNX axes may be negative; torch accepts negative dims too, so keep them unless the rank is known."""
    return axis + rank if axis < 0 and rank is not None else axis


def spatial_padding(b, node, x_value, kernel, strides, dilations,
                    pool: bool = False) -> tuple[list[int], list[int] | None]:
    """(symmetric padding for the conv call, explicit F.pad list or None) from pads / auto_pad."""
    begin, end = onnx_pads(b, node, x_value, kernel, strides, dilations)
    # torch's pools pad at most half the kernel implicitly; convolutions any amount
    if begin == end and (not pool or all(p <= k // 2 for p, k in zip(begin, kernel))):
        return begin, None
    return [0] * len(kernel), torch_pads(begin, end)


def onnx_pads(b, node, x_value, kernel, strides, dilations) -> tuple[list[int], list[int]]:
    """(begins, ends) of the spatial dims from pads / auto_pad."""
    n = len(kernel)
    auto_pad = string(b.attr(node, "auto_pad", "NOTSET"))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        shape = b.shape(x_value)
        dims = [shape[2 + i] if shape is not None else None for i in range(n)]
        if any(not isinstance(d, int) for d in dims):
            raise b.unsupported(node, f"auto_pad {auto_pad} needs static spatial dims")
        pads_begin, pads_end = [], []
        for d, k, s, dl in zip(dims, kernel, strides, dilations):
            out = -(-d // s)
            total = max(0, (out - 1) * s + (k - 1) * dl + 1 - d)
            small, large = total // 2, total - total // 2
            pads_begin.append(small if auto_pad == "SAME_UPPER" else large)
            pads_end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = pads_begin + pads_end
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    else:
        pads = list(b.attr(node, "pads", [0] * (2 * n)))
    return [int(p) for p in pads[:n]], [int(p) for p in pads[n:]]


def torch_pads(begin: list[int], end: list[int]) -> list[int]:
    """ONNX's (begins, ends) of the trailing dims as F.pad's list, which names the last dim first."""
    explicit = []
    for i in reversed(range(len(begin))):
        explicit += [int(begin[i]), int(end[i])]
    return explicit


def ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]

"""Helpers shared by the op families."""

from __future__ import annotations

import numpy as np


def axis_of(axis: int, rank: int | None) -> int:
    """ONNX axes may be negative; torch accepts negative dims too, so keep them unless the rank is known."""
    return axis + rank if axis < 0 and rank is not None else axis


def spatial_padding(b, node, x_value, kernel, strides, dilations) -> tuple[list[int], list[int] | None]:
    """(symmetric padding for the conv call, explicit F.pad list or None) from pads / auto_pad."""
    n = len(kernel)
    auto_pad = b.attr(node, "auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        shape = x_value.shape
        dims = [shape[2 + i] if shape is not None else None for i in range(n)]
        if any(not isinstance(d, int) for d in dims):
            raise ValueError(f"{node.op_type} {node.name}: auto_pad {auto_pad} needs static spatial dims")
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
    begin, end = pads[:n], pads[n:]
    if begin == end:
        return begin, None
    explicit = []
    for i in reversed(range(n)):  # F.pad lists the last dim first
        explicit += [begin[i], end[i]]
    return [0] * n, explicit


def ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]

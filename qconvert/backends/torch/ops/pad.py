"""Pad: constant, reflect, edge and wrap, on any axes, with pads known at emit time or computed at run time.

Constant padding is F.pad (negative pads crop). The other modes gather each padded axis through an index
vector (reflect / clamp / modulo), which is exact on every axis, the batch and channels included, where
torch's reflect/replicate/circular pads take only the trailing spatial dims.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.ops.common import string
from qconvert.backends.torch.registry import emits

MODES = ("constant", "reflect", "edge", "wrap")


def pad_(x: Tensor, pads: List[int], mode: str, value: Optional[Tensor], axes: List[int]) -> Tensor:
    rank = x.dim()
    if len(axes) == 0:
        axes = list(range(rank))
    n = len(axes)
    if mode == "constant":
        flat: List[int] = [0] * (2 * rank)
        for i in range(n):
            axis = axes[i] + rank if axes[i] < 0 else axes[i]
            flat[2 * (rank - 1 - axis)] = pads[i]
            flat[2 * (rank - 1 - axis) + 1] = pads[n + i]
        fill = 0.0 if value is None else float(value.reshape(-1)[0].item())
        return F.pad(x, flat, "constant", fill)
    for i in range(n):
        axis = axes[i] + rank if axes[i] < 0 else axes[i]
        size = x.size(axis)
        index = torch.arange(-pads[i], size + pads[n + i], dtype=torch.long, device=x.device)
        if mode == "edge":
            index = index.clamp(0, size - 1)
        elif mode == "wrap":
            index = torch.remainder(index, size)
        elif size > 1:  # reflect: ... 2 1 | 0 1 2 | 1 0 ...
            period = 2 * size - 2
            index = torch.remainder(index, period)
            index = torch.where(index >= size, period - index, index)
        else:
            index = torch.zeros_like(index)
        x = x.index_select(axis, index)
    return x


@emits("Pad")
def pad(b, node):
    mode = string(b.attr(node, "mode", "constant"))
    if mode not in MODES:
        raise b.unsupported(node, f"mode {mode}")
    x = b.input(node, 0)
    if b.opset < 11:
        pads, value = list(b.attr(node, "pads")), None
        fill = float(b.attr(node, "value", 0.0))
        axes: list[int] | object = []
    else:
        pads = b.ints_or_node(node, 1)
        value = b.input(node, 2) if b.has(node, 2) else None
        constant = b.const(node.inputs[2]) if b.has(node, 2) else np.zeros(1)
        fill = float(constant.reshape(-1)[0]) if constant is not None and constant.size else 0.0
        axes = b.ints_or_node(node, 3) if b.has(node, 3) else []
        if constant is not None:
            value = None
    if mode == "constant" and isinstance(pads, list) and axes == [] and value is None:
        rank = len(pads) // 2
        flat = []
        for axis in reversed(range(rank)):
            flat += [pads[axis], pads[rank + axis]]
        while len(flat) > 2 and flat[-2:] == [0, 0]:
            flat = flat[:-2]
        return b.call(F.pad, x, flat, "constant", fill)
    if value is None and fill != 0.0:
        value = b.buffer(f"{b.unique(node.name or 'pad')}_value", torch.tensor([fill]))
    return b.call(pad_, x, pads, mode, value, axes)

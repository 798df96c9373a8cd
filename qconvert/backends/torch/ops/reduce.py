"""Reductions (Reduce*, ArgMax/ArgMin) and scans (CumSum, CumProd).

Axes come from the attribute (older opsets) or an input, which may be computed at run time; the helpers
(compiled into the artifact) take them as List[int]. An empty axes list reduces every axis unless
noop_with_empty_axes is set. Max/Min over an empty set give -inf/+inf, as ONNX says.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from qconvert.backends.torch.registry import emits

KINDS = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod",
         "ReduceL1": "l1", "ReduceL2": "l2", "ReduceLogSum": "logsum", "ReduceLogSumExp": "logsumexp",
         "ReduceSumSquare": "sumsquare"}
# Before these opsets the axes are an attribute.
AXES_INPUT_SINCE = {"ReduceSum": 13}


def reduce_(x: Tensor, axes: List[int], keepdim: bool, noop: bool, kind: str) -> Tensor:
    if len(axes) == 0:
        if noop:
            return x
        axes = list(range(x.dim()))
    dims = [a + x.dim() if a < 0 else a for a in axes]
    if kind == "sum":
        return torch.sum(x, dims, keepdim)
    if kind == "mean":
        return torch.mean(x, dims, keepdim)
    if kind == "sumsquare":
        return torch.sum(x * x, dims, keepdim)
    if kind == "l1":
        return torch.sum(torch.abs(x), dims, keepdim)
    if kind == "l2":
        y = torch.sqrt(torch.sum((x * x).double(), dims, keepdim))
        return y.to(x.dtype) if x.is_floating_point() else torch.round(y).to(x.dtype)
    if kind == "logsum":
        return torch.log(torch.sum(x, dims, keepdim))
    if kind == "logsumexp":
        if x.numel() == 0:
            return torch.log(torch.sum(torch.exp(x), dims, keepdim))
        return torch.logsumexp(x, dims, keepdim)
    if kind == "prod":
        order = list(dims)
        order.sort(reverse=True)
        for d in order:
            x = torch.prod(x, d, keepdim)
        return x
    # max / min: torch.amax refuses a zero-size reduced dim; ONNX gives the identity element
    empty = False
    for d in dims:
        if x.size(d) == 0:
            empty = True
    if empty:
        shape = torch.sum(torch.zeros(x.shape, device=x.device), dims, keepdim).shape
        if x.dtype == torch.bool:
            return torch.full(shape, kind == "min", dtype=torch.bool, device=x.device)
        fill = float("-inf") if kind == "max" else float("inf")
        return torch.full(shape, fill, dtype=x.dtype, device=x.device)
    if x.dtype == torch.bool:
        return (torch.amax(x.to(torch.uint8), dims, keepdim) if kind == "max" else
                torch.amin(x.to(torch.uint8), dims, keepdim)).to(torch.bool)
    return torch.amax(x, dims, keepdim) if kind == "max" else torch.amin(x, dims, keepdim)


@emits(*KINDS)
def reduce(b, node):
    if b.opset >= AXES_INPUT_SINCE.get(node.op_type, 18):
        axes = b.ints_or_node(node, 1) if b.has(node, 1) else []
    else:
        axes = list(b.attr(node, "axes", []))
    keep = bool(b.attr(node, "keepdims", 1))
    noop = bool(b.attr(node, "noop_with_empty_axes", 0))
    kind = KINDS[node.op_type]
    if kind == "mean" and not b.is_float(node.inputs[0]):
        raise b.unsupported(node, "torch.mean takes floats only")
    return b.call(reduce_, b.input(node, 0), axes, keep, noop, kind)


def arg_extreme(x: Tensor, axis: int, keepdim: bool, last: bool, largest: bool) -> Tensor:
    if last:  # the last occurrence: search the flipped tensor, map the index back
        flipped = x.flip([axis])
        index = torch.argmax(flipped, axis, keepdim) if largest else torch.argmin(flipped, axis, keepdim)
        return x.size(axis) - 1 - index
    return torch.argmax(x, axis, keepdim) if largest else torch.argmin(x, axis, keepdim)


@emits("ArgMax", "ArgMin")
def arg_max_min(b, node):
    x = b.input(node, 0)
    if b.dtype(node.inputs[0]) is not None and b.dtype(node.inputs[0]).name == "BOOL":
        x = b.method("to", x, torch.uint8)
    return b.call(arg_extreme, x, int(b.attr(node, "axis", 0)), bool(b.attr(node, "keepdims", 1)),
                  bool(b.attr(node, "select_last_index", 0)), node.op_type == "ArgMax")


def cumulate(x: Tensor, axis: Tensor, exclusive: bool, reverse: bool, product: bool) -> Tensor:
    dim = int(axis.reshape(-1)[0].item())
    if dim < 0:
        dim += x.dim()
    if reverse:
        x = x.flip([dim])
    y = torch.cumprod(x, dim, dtype=x.dtype) if product else torch.cumsum(x, dim, dtype=x.dtype)
    if exclusive:  # shift by one: the identity element first, the last total dropped
        first = torch.ones_like(x.narrow(dim, 0, 1)) if product else torch.zeros_like(x.narrow(dim, 0, 1))
        y = torch.cat([first, y.narrow(dim, 0, x.size(dim) - 1)], dim)
    return y.flip([dim]) if reverse else y


@emits("CumSum", "CumProd")
def cumulative(b, node):
    return b.call(cumulate, b.input(node, 0), b.input(node, 1), bool(b.attr(node, "exclusive", 0)),
                  bool(b.attr(node, "reverse", 0)), node.op_type == "CumProd")

"""Indexing ops: GatherElements, GatherND, ScatterElements/Scatter, ScatterND, OneHot, NonZero, Compress,
ReverseSequence, TopK. Negative indices count from the end, as ONNX says; torch's kernels take them
normalized, which the helpers (compiled into the artifact) do at run time."""

from __future__ import annotations

import operator
from typing import List

import torch
from torch import Tensor

from qconvert.backends.torch.ops.common import prod, string
from qconvert.backends.torch.registry import emits

REDUCTIONS = {"none": "none", "add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _positive(indices: Tensor, size: int) -> Tensor:
    indices = indices.long()
    return torch.where(indices < 0, indices + size, indices)


def gather_elements(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    if axis < 0:
        axis += x.dim()
    return torch.gather(x, axis, _positive(indices, x.size(axis)))


def scatter_elements(x: Tensor, indices: Tensor, updates: Tensor, axis: int, reduction: str) -> Tensor:
    if axis < 0:
        axis += x.dim()
    indices = _positive(indices, x.size(axis))
    if reduction == "none":
        return torch.scatter(x, axis, indices, updates)
    return torch.scatter_reduce(x, axis, indices, updates, reduction, include_self=True)


def _flat_positions(indices: Tensor, dims: List[int]) -> Tensor:
    """Row-major positions of index tuples (the last axis of `indices`) into `dims`."""
    flat = torch.zeros(indices.shape[:-1], dtype=torch.long, device=indices.device)
    for j in range(len(dims)):
        flat = flat * dims[j] + _positive(indices[..., j], dims[j])
    return flat


def gather_nd(x: Tensor, indices: Tensor, batch_dims: int) -> Tensor:
    k = indices.size(-1)
    batch = prod(x.shape[:batch_dims])
    tuple_dims = x.shape[batch_dims:batch_dims + k]
    rest = list(x.shape[batch_dims + k:])  # list(): training runs these eagerly, where shapes are torch.Size
    positions = _flat_positions(indices.reshape([batch, -1, k]) if indices.numel() else
                                indices.reshape([batch, 0, k]), tuple_dims)
    offsets = torch.arange(batch, device=x.device).unsqueeze(1) * prod(tuple_dims)
    rows = x.reshape([batch * prod(tuple_dims)] + rest).index_select(0, (positions + offsets).reshape(-1))
    return rows.reshape(list(indices.shape[:-1]) + rest)


def scatter_nd(x: Tensor, indices: Tensor, updates: Tensor, reduction: str) -> Tensor:
    k = indices.size(-1)
    tuple_dims = x.shape[:k]
    rest = list(x.shape[k:])
    positions = _flat_positions(indices, tuple_dims).reshape(-1)
    rows = x.reshape([prod(tuple_dims)] + rest).clone()
    values = updates.reshape([positions.numel()] + rest)
    if reduction == "none":
        rows.index_copy_(0, positions, values)
    elif reduction == "sum":
        rows.index_add_(0, positions, values)
    else:
        rows.index_reduce_(0, positions, values, reduction, include_self=True)
    return rows.reshape(x.shape)


def one_hot(indices: Tensor, depth: Tensor, values: Tensor, axis: int) -> Tensor:
    d = int(depth.reshape(-1)[0].item())
    positions = indices.long() if not indices.is_floating_point() else indices.trunc().long()
    positions = torch.where(positions < 0, positions + d, positions)
    hot = positions.unsqueeze(-1) == torch.arange(d, device=indices.device)
    out = torch.where(hot, values[1], values[0])
    rank = out.dim()
    return out.movedim(-1, axis if axis >= 0 else axis + rank)


def compress_(x: Tensor, condition: Tensor, axis: int, flat: bool) -> Tensor:
    if flat:
        x, axis = x.reshape(-1), 0
    if axis < 0:
        axis += x.dim()
    keep = torch.nonzero(condition.reshape(-1)[:x.size(axis)]).reshape(-1)
    return x.index_select(axis, keep)


def reverse_sequence(x: Tensor, lengths: Tensor, batch_axis: int, time_axis: int) -> Tensor:
    out = x.clone()
    for i in range(x.size(batch_axis)):
        n = int(lengths[i].item())
        if n > 0:
            row = x.select(batch_axis, i)
            t = time_axis if time_axis < batch_axis else time_axis - 1
            out.select(batch_axis, i).narrow(t, 0, n).copy_(row.narrow(t, 0, n).flip([t]))
    return out


def top_k(x: Tensor, k: Tensor, axis: int, largest: bool) -> List[Tensor]:
    # A stable sort keeps the lower index first among equal values, as ONNX asks.
    values, indices = torch.sort(x, stable=True, dim=axis, descending=largest)
    count = int(k.reshape(-1)[0].item())
    return [values.narrow(axis, 0, count), indices.narrow(axis, 0, count)]


@emits("GatherElements")
def gather_elements_op(b, node):
    return b.call(gather_elements, b.input(node, 0), b.input(node, 1), int(b.attr(node, "axis", 0)))


@emits("ScatterElements", "Scatter")
def scatter_elements_op(b, node):
    reduction = REDUCTIONS.get(string(b.attr(node, "reduction", "none")))
    if reduction is None:
        raise b.unsupported(node, f"reduction {b.attr(node, 'reduction')}")
    return b.call(scatter_elements, b.input(node, 0), b.input(node, 1), b.input(node, 2),
                  int(b.attr(node, "axis", 0)), reduction)


@emits("GatherND")
def gather_nd_op(b, node):
    return b.call(gather_nd, b.input(node, 0), b.input(node, 1), int(b.attr(node, "batch_dims", 0)))


@emits("ScatterND")
def scatter_nd_op(b, node):
    reduction = REDUCTIONS.get(string(b.attr(node, "reduction", "none")))
    if reduction is None:
        raise b.unsupported(node, f"reduction {b.attr(node, 'reduction')}")
    return b.call(scatter_nd, b.input(node, 0), b.input(node, 1), b.input(node, 2), reduction)


@emits("OneHot")
def one_hot_op(b, node):
    return b.call(one_hot, b.input(node, 0), b.input(node, 1), b.input(node, 2), int(b.attr(node, "axis", -1)))


@emits("NonZero")
def non_zero(b, node):
    return b.method("t", b.call(torch.nonzero, b.input(node, 0)))


@emits("Compress")
def compress(b, node):
    axis = b.attr(node, "axis")
    return b.call(compress_, b.input(node, 0), b.input(node, 1), int(axis or 0), axis is None)


@emits("ReverseSequence")
def reverse_sequence_op(b, node):
    return b.call(reverse_sequence, b.input(node, 0), b.input(node, 1), int(b.attr(node, "batch_axis", 1)),
                  int(b.attr(node, "time_axis", 0)))


@emits("TopK")
def top_k_op(b, node):
    if b.opset < 10:
        k = b.buffer(f"{node.name or 'topk'}_k", torch.tensor([int(b.attr(node, "k"))]))
    else:
        k = b.input(node, 1)
    # sorted=0 leaves the order to the runtime: sorted is one of the orders it allows
    result = b.call(top_k, b.input(node, 0), k, int(b.attr(node, "axis", -1)), bool(b.attr(node, "largest", 1)))
    return [b.call(operator.getitem, result, 0), b.call(operator.getitem, result, 1)]

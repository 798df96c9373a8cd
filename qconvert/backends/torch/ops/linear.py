"""Gemm and MatMul: F.linear where the weight is a constant (a bias Add is folded in), matmul otherwise.

Training programs take the matmul path for every node: the weight is then the initializer's own Parameter
(transposed, scaled and added to in the graph), and a bias Add is the Add emitter's.

In torch-dynamic programs a constant weight becomes a dynamic int8 Linear
(torch.ao.nn.quantized.dynamic.Linear: int8 weights per output channel, activations quantized per batch).
"""

from __future__ import annotations

import operator
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.registry import emits


def bias_add(b, value, n_out: int):
    """A following Add of a constant of shape (N,) that can become the Linear's bias: (node, array)."""
    users = b.consumers(value)
    if len(users) != 1 or users[0].op_type != "Add" or b.is_output(value):
        return None, None
    add = users[0]
    other = add.inputs[1] if add.inputs[0] is value else add.inputs[0]
    array = b.const(other)
    if array is None or array.shape != (n_out,) or array.dtype != np.float32:
        return None, None
    return add, array


def linear(b, node, x, weight: np.ndarray, bias: np.ndarray | None):
    """y = x @ weight.T + bias; weight (N, K) float32."""
    if b.mode == "dynamic":
        from qconvert.backends.torch.ops.quantized import dynamic_linear

        return b.module(node.name or "linear", dynamic_linear(weight, bias), x)
    name = b.unique(node.name or node.op_type.lower())  # unnamed nodes must not share a buffer
    weight_node = b.buffer(f"{name}_weight_t", np.ascontiguousarray(weight))
    bias_node = b.buffer(f"{name}_bias", bias) if bias is not None else None
    return b.call(F.linear, x, weight_node, bias_node)


def _const_matmul(b, node):
    """(node, weight (K, N), bias Add node or None, bias or None) for a MatMul by a 2-D constant."""
    if b.mode == "train":
        return None
    weight = b.const(node.inputs[1]) if node.op_type == "MatMul" and len(node.inputs) == 2 else None
    if weight is None or weight.ndim != 2 or weight.dtype != np.float32:
        return None
    add, bias = bias_add(b, node.outputs[0], weight.shape[1])
    return node, weight, add, bias


@emits("MatMul")
def matmul(b, node):
    mine = _const_matmul(b, node)
    if mine is None:
        return b.call(torch.matmul, b.input(node, 0), b.input(node, 1))
    group = [mine]
    if b.mode == "dynamic":
        # MatMuls of one activation (attention's Q, K, V) become one Linear: the per-call activation
        # quantization is done once instead of once per MatMul.
        for user in b.consumers(node.inputs[0]):
            other = _const_matmul(b, user) if user is not node and id(user) not in b.done else None
            if other is not None and user.inputs[0] is node.inputs[0] and \
                    other[1].shape[0] == mine[1].shape[0]:
                group.append(other)
    weight = np.concatenate([g[1] for g in group], axis=1)
    biases = [g[3] if g[3] is not None else np.zeros(g[1].shape[1], np.float32) for g in group]
    bias = None if all(g[3] is None for g in group) else np.concatenate(biases)
    result = linear(b, node, b.input(node, 0), weight.T, bias)
    sizes = [g[1].shape[1] for g in group]
    parts = b.call(torch.split, result, sizes, -1) if len(group) > 1 else None
    for index, (member, _, add, _) in enumerate(group):
        value = b.call(operator.getitem, parts, index) if parts is not None else result
        b.done.add(id(member))
        b.set(member.outputs[0], value)
        if add is not None:
            b.done.add(id(add))
            b.set(add.outputs[0], value)
    return b.values[node.outputs[0].name]


@emits("Gemm")
def gemm(b, node):
    alpha, beta = float(b.attr(node, "alpha", 1.0)), float(b.attr(node, "beta", 1.0))
    trans_a, trans_b = int(b.attr(node, "transA", 0)), int(b.attr(node, "transB", 0))
    x = b.input(node, 0)
    if trans_a:
        x = b.method("t", x)
    weight, c = b.const(node.inputs[1]), b.const(node.inputs[2]) if len(node.inputs) > 2 else None
    constant = weight is not None and (c is None or c.ndim <= 1) and (len(node.inputs) < 3 or node.inputs[2] is None
                                                                      or c is not None)
    if constant and b.mode != "train":
        weight = (weight if trans_b else weight.T) * np.float32(alpha)
        bias = None if c is None else np.broadcast_to(c * np.float32(beta), (weight.shape[0],)).astype(np.float32)
        return linear(b, node, x, np.ascontiguousarray(weight, dtype=np.float32), bias)
    w = b.input(node, 1)
    if trans_b:
        w = b.method("t", w)
    y = b.call(torch.matmul, x, w)
    if alpha != 1.0:
        y = b.call(torch.mul, y, alpha)
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        bias = b.input(node, 2)
        if beta != 1.0:
            bias = b.call(torch.mul, bias, beta)
        y = b.call(torch.add, y, bias)
    return y


def einsum_(equation: str, operands: List[Tensor]) -> Tensor:
    return torch.einsum(equation, operands)


@emits("Einsum")
def einsum(b, node):
    equation = b.attr(node, "equation")
    equation = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    return b.call(einsum_, equation, [b.input(node, i) for i in range(len(node.inputs))])


@emits("Det")
def det(b, node):
    return b.call(torch.linalg.det, b.input(node, 0))

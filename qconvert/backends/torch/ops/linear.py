"""Gemm and MatMul: F.linear where the weight is a constant the program does not train, matmul otherwise.

A MatMul may carry a bias as a third input: the torch backend's FuseMatMulBias puts a following constant
bias Add there (qconvert.backends.torch.passes), and the emitters read each node as they find it.

Training programs read every float initializer as its own Parameter (qconvert/train/program.py): a
weight the program trains is used as the initializer holds it (matmul, transposed and scaled in the graph),
never transposed or scaled into a buffer at emit time.

In torch-dynamic programs a constant weight becomes a dynamic int8 Linear
(torch.ao.nn.quantized.dynamic.Linear: int8 weights per output channel, activations quantized per batch).
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.registry import emits


def linear(b, node, x, weight: np.ndarray, bias: np.ndarray | None):
    """y = x @ weight.T + bias; weight (N, K) float32."""
    if b.mode == "dynamic":
        from qconvert.backends.torch.ops.quantized import dynamic_linear

        return b.module(node.name or "linear", dynamic_linear(weight, bias), x)
    name = b.unique(node.name or node.op_type.lower())  # unnamed nodes must not share a buffer
    weight_node = b.buffer(f"{name}_weight_t", np.ascontiguousarray(weight))
    bias_node = b.buffer(f"{name}_bias", bias) if bias is not None else None
    return b.call(F.linear, x, weight_node, bias_node)


def _fixed(b, node, index: int) -> tuple[bool, np.ndarray | None]:
    """(whether input `index` is absent or a constant the program does not train, its array)."""
    if not b.has(node, index):
        return True, None
    array = b.const(node.inputs[index])
    return array is not None and not b.is_trainable(node.inputs[index], array), array


@emits("MatMul")
def matmul(b, node):
    (fixed_weight, weight), (fixed_bias, bias) = _fixed(b, node, 1), _fixed(b, node, 2)
    if fixed_weight and fixed_bias and weight is not None and weight.ndim == 2 and weight.dtype == np.float32 and \
            (bias is None or (bias.shape == (weight.shape[1],) and bias.dtype == np.float32)):
        return linear(b, node, b.input(node, 0), weight.T, bias)
    y = b.call(torch.matmul, b.input(node, 0), b.input(node, 1))
    return b.call(torch.add, y, b.input(node, 2)) if b.has(node, 2) else y


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
    if constant and _fixed(b, node, 1)[0] and _fixed(b, node, 2)[0]:
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

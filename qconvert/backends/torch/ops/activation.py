"""Activations, Softmax/LogSoftmax/Hardmax."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.ops.common import prod

from qconvert.backends.torch.registry import emits


# Ops that are one torch call on their one input.
UNARY = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softsign": F.softsign,
         "Softplus": F.softplus, "Mish": F.mish}


def _unary(function):
    def emit(b, node):
        return b.call(function, b.input(node, 0))

    return emit


for _op, _function in UNARY.items():
    emits(_op)(_unary(_function))


@emits("LeakyRelu")
def leaky_relu(b, node):
    return b.call(F.leaky_relu, b.input(node, 0), float(b.attr(node, "alpha", 0.01)))


@emits("Elu")
def elu(b, node):
    return b.call(F.elu, b.input(node, 0), float(b.attr(node, "alpha", 1.0)))


@emits("Selu")
def selu(b, node):
    alpha, gamma = float(b.attr(node, "alpha", 1.67326319217681884765625)), float(
        b.attr(node, "gamma", 1.05070102214813232421875))
    return b.call(torch.mul, b.call(F.elu, b.input(node, 0), alpha), gamma)


@emits("Celu")
def celu(b, node):
    return b.call(F.celu, b.input(node, 0), float(b.attr(node, "alpha", 1.0)))


@emits("ThresholdedRelu")
def thresholded_relu(b, node):
    x = b.input(node, 0)
    alpha = float(b.attr(node, "alpha", 1.0))
    return b.call(torch.where, b.call(torch.gt, x, alpha), x, b.call(torch.zeros_like, x))


@emits("Swish")
def swish(b, node):
    x = b.input(node, 0)
    alpha = float(b.attr(node, "alpha", 1.0))
    return b.call(torch.mul, x, b.call(torch.sigmoid, b.call(torch.mul, x, alpha) if alpha != 1.0 else x))


@emits("Gelu")
def gelu(b, node):
    approximate = b.attr(node, "approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return b.call(F.gelu, b.input(node, 0), approximate=approximate)


@emits("HardSigmoid")
def hard_sigmoid(b, node):
    alpha, beta = float(b.attr(node, "alpha", 0.2)), float(b.attr(node, "beta", 0.5))
    return b.call(torch.clamp, b.call(torch.add, b.call(torch.mul, b.input(node, 0), alpha), beta), 0.0, 1.0)


@emits("HardSwish")
def hard_swish(b, node):
    return b.call(F.hardswish, b.input(node, 0))


def prelu_(x: Tensor, slope: Tensor) -> Tensor:
    return torch.where(x < 0, x * slope, x)


@emits("PRelu")
def prelu(b, node):
    return b.call(prelu_, b.input(node, 0), b.input(node, 1))  # slope broadcasts as ONNX says


def shrink_(x: Tensor, bias: float, lambd: float) -> Tensor:
    return torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, torch.zeros_like(x)))


@emits("Shrink")
def shrink(b, node):
    return b.call(shrink_, b.input(node, 0), float(b.attr(node, "bias", 0.0)), float(b.attr(node, "lambd", 0.5)))


def clip_(x: Tensor, low: Optional[Tensor], high: Optional[Tensor]) -> Tensor:
    if low is not None:
        x = torch.maximum(x, low.to(x.dtype))
    if high is not None:
        x = torch.minimum(x, high.to(x.dtype))  # after the max: min > max gives max, as ONNX
    return x


@emits("Clip")
def clip(b, node):
    x = b.input(node, 0)
    if b.opset < 11:
        low, high = b.attr(node, "min"), b.attr(node, "max")
    else:
        arrays = [b.const(node.inputs[i]) if b.has(node, i) else None for i in (1, 2)]
        if any(b.has(node, i) and arrays[i - 1] is None for i in (1, 2)):  # run-time bounds
            return b.call(clip_, x, b.input(node, 1), b.input(node, 2))
        low, high = [a.reshape(()).item() if a is not None else None for a in arrays]
    if low is None and high is None:
        return x
    return b.call(torch.clamp, x, low, high)


def softmax_2d(x: Tensor, axis: int, log: bool) -> Tensor:
    """Opset < 13: the input is coerced to 2-D at `axis` and normalized over the flattened tail."""
    if axis < 0:
        axis += x.dim()
    flat = x.reshape(prod(x.shape[:axis]), prod(x.shape[axis:]))
    y = torch.log_softmax(flat, 1) if log else torch.softmax(flat, 1)
    return y.reshape(x.shape)


def hardmax_(x: Tensor, axis: int, flatten: bool) -> Tensor:
    shape = x.shape
    if flatten:
        if axis < 0:
            axis += x.dim()
        x, axis = x.reshape(prod(x.shape[:axis]), prod(x.shape[axis:])), 1
    one_hot = torch.zeros_like(x).scatter_(axis, torch.argmax(x, axis, keepdim=True), 1.0)
    return one_hot.reshape(shape)


@emits("Softmax", "LogSoftmax")
def softmax(b, node):
    legacy = b.opset < 13
    axis = int(b.attr(node, "axis", 1 if legacy else -1))
    log = node.op_type == "LogSoftmax"
    if legacy and axis not in (-1, (b.rank(node.inputs[0]) or 0) - 1):
        return b.call(softmax_2d, b.input(node, 0), axis, log)
    return b.call(torch.log_softmax if log else torch.softmax, b.input(node, 0), axis)


@emits("Hardmax")
def hardmax(b, node):
    legacy = b.opset < 13
    axis = int(b.attr(node, "axis", 1 if legacy else -1))
    return b.call(hardmax_, b.input(node, 0), axis, legacy)

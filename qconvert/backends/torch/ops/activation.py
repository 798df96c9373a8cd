"""Activations and Softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qconvert.backends.torch.registry import emits


@emits("Relu")
def relu(b, node):
    return b.call(torch.relu, b.input(node, 0))


@emits("Sigmoid")
def sigmoid(b, node):
    return b.call(torch.sigmoid, b.input(node, 0))


@emits("Tanh")
def tanh(b, node):
    return b.call(torch.tanh, b.input(node, 0))


@emits("LeakyRelu")
def leaky_relu(b, node):
    return b.call(F.leaky_relu, b.input(node, 0), float(b.attr(node, "alpha", 0.01)))


@emits("Elu")
def elu(b, node):
    return b.call(F.elu, b.input(node, 0), float(b.attr(node, "alpha", 1.0)))


@emits("Gelu")
def gelu(b, node):
    approximate = b.attr(node, "approximate", "none")
    return b.call(F.gelu, b.input(node, 0), approximate=approximate)


@emits("HardSigmoid")
def hard_sigmoid(b, node):
    alpha, beta = float(b.attr(node, "alpha", 0.2)), float(b.attr(node, "beta", 0.5))
    return b.call(torch.clamp, b.call(torch.add, b.call(torch.mul, b.input(node, 0), alpha), beta), 0.0, 1.0)


@emits("HardSwish")
def hard_swish(b, node):
    return b.call(F.hardswish, b.input(node, 0))


@emits("Clip")
def clip(b, node):
    low = b.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    high = b.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    low = float(low) if low is not None else b.attr(node, "min")
    high = float(high) if high is not None else b.attr(node, "max")
    return b.call(torch.clamp, b.input(node, 0), low, high)


@emits("Softmax", "LogSoftmax")
def softmax(b, node):
    function = torch.softmax if node.op_type == "Softmax" else torch.log_softmax
    return b.call(function, b.input(node, 0), int(b.attr(node, "axis", -1)))

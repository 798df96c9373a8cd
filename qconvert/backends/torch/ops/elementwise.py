"""Elementwise arithmetic, comparison and unary math."""

from __future__ import annotations

import torch

from qconvert.backends.torch.registry import emits

BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
          "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
          "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or}
UNARY = {"Sqrt": torch.sqrt, "Erf": torch.erf, "Exp": torch.exp, "Log": torch.log, "Neg": torch.neg,
         "Abs": torch.abs, "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil,
         "Not": torch.logical_not, "Sin": torch.sin, "Cos": torch.cos, "Round": torch.round}


def _binary(function):
    def emit(b, node):
        return b.call(function, b.input(node, 0), b.input(node, 1))
    return emit


def _unary(function):
    def emit(b, node):
        return b.call(function, b.input(node, 0))
    return emit


for _op, _function in BINARY.items():
    emits(_op)(_binary(_function))
for _op, _function in UNARY.items():
    emits(_op)(_unary(_function))


@emits("Max", "Min", "Sum")
def variadic(b, node):
    function = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add}[node.op_type]
    result = b.input(node, 0)
    for index in range(1, len(node.inputs)):
        result = b.call(function, result, b.input(node, index))
    return result


@emits("Where")
def where(b, node):
    return b.call(torch.where, b.input(node, 0), b.input(node, 1), b.input(node, 2))


@emits("Cast")
def cast(b, node):
    import onnx_ir as ir

    dtype = ir.DataType(b.attr(node, "to"))
    torch_dtype = {ir.DataType.FLOAT: torch.float32, ir.DataType.INT64: torch.int64,
                   ir.DataType.INT32: torch.int32, ir.DataType.BOOL: torch.bool,
                   ir.DataType.FLOAT16: torch.float16, ir.DataType.DOUBLE: torch.float64}[dtype]
    return b.method("to", b.input(node, 0), torch_dtype)

"""Elementwise arithmetic, comparison, bitwise and unary math, Where, Cast/CastLike."""

from __future__ import annotations

import onnx_ir as ir
import torch

from qconvert.backends.torch.registry import emits

BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul,
          "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
          "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
          "BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or, "BitwiseXor": torch.bitwise_xor}
UNARY = {"Sqrt": torch.sqrt, "Erf": torch.erf, "Exp": torch.exp, "Log": torch.log, "Neg": torch.neg,
         "Abs": torch.abs, "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil,
         "Not": torch.logical_not, "BitwiseNot": torch.bitwise_not, "Sin": torch.sin, "Cos": torch.cos,
         "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos, "Atan": torch.atan, "Sinh": torch.sinh,
         "Cosh": torch.cosh, "Asinh": torch.asinh, "Acosh": torch.acosh, "Atanh": torch.atanh,
         "Round": torch.round,  # both round half to even
         "Sign": torch.sign, "IsNaN": torch.isnan}


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


@emits("Div")
def div(b, node):
    if b.is_float(node.inputs[0]):
        return b.call(torch.div, b.input(node, 0), b.input(node, 1))
    if b.dtype(node.inputs[0]) is None:
        raise b.unsupported(node, "the input's element type is unknown (integer Div truncates)")
    return b.call(torch.div, b.input(node, 0), b.input(node, 1), rounding_mode="trunc")  # C-style, as ONNX


@emits("Pow")
def pow_(b, node):
    x, y = b.input(node, 0), b.input(node, 1)
    if b.is_float(node.inputs[0]):
        if b.dtype(node.inputs[1]) != b.dtype(node.inputs[0]):
            y = b.method("to", y, b.torch_dtype(node, b.dtype(node.inputs[0])))
        return b.call(torch.pow, x, y)
    dtype = b.torch_dtype(node, b.dtype(node.inputs[0]))  # ONNX keeps the base's type
    result = b.call(torch.pow, b.method("to", x, torch.float64), b.method("to", y, torch.float64))
    return b.method("to", result, dtype)


@emits("Mod")
def mod(b, node):
    fmod = int(b.attr(node, "fmod", 0))
    if not fmod and b.is_float(node.inputs[0]):
        raise b.unsupported(node, "fmod=0 on floats is not defined by ONNX")
    # fmod=1: the dividend's sign (C fmod); fmod=0: the divisor's sign (Python %), for integers
    return b.call(torch.fmod if fmod else torch.remainder, b.input(node, 0), b.input(node, 1))


@emits("BitShift")
def bit_shift(b, node):
    direction = b.attr(node, "direction")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    function = torch.bitwise_left_shift if direction == "LEFT" else torch.bitwise_right_shift
    return b.call(function, b.input(node, 0), b.input(node, 1))


@emits("IsInf")
def is_inf(b, node):
    x = b.input(node, 0)
    positive, negative = int(b.attr(node, "detect_positive", 1)), int(b.attr(node, "detect_negative", 1))
    if positive and negative:
        return b.call(torch.isinf, x)
    if positive:
        return b.call(torch.isposinf, x)
    if negative:
        return b.call(torch.isneginf, x)
    return b.call(torch.zeros_like, x, dtype=torch.bool)


@emits("Max", "Min", "Sum", "Mean")
def variadic(b, node):
    function = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add, "Mean": torch.add}[node.op_type]
    result = b.input(node, 0)
    for index in range(1, len(node.inputs)):
        result = b.call(function, result, b.input(node, index))
    if node.op_type == "Mean" and len(node.inputs) > 1:
        result = b.call(torch.div, result, float(len(node.inputs)))
    return result


@emits("Where")
def where(b, node):
    return b.call(torch.where, b.input(node, 0), b.input(node, 1), b.input(node, 2))


def _cast(b, node, x, to: ir.DataType):
    source = b.dtype(node.inputs[0])
    dtype = b.torch_dtype(node, to)
    if source is not None:
        b.torch_dtype(node, source)
    if source == to:
        return x
    return b.method("to", x, dtype)


@emits("Cast")
def cast(b, node):
    return _cast(b, node, b.input(node, 0), ir.DataType(b.attr(node, "to")))


@emits("CastLike")
def cast_like(b, node):
    to = b.dtype(node.inputs[1])
    if to is None:
        raise b.unsupported(node, "the target's element type is unknown")
    return _cast(b, node, b.input(node, 0), to)

"""Arithmetic, activations and Softmax; broadcasting NCHW constants against NHWC-held activations."""

import numpy as np
import pytest

from qconvert.passes import cleanup
from tests.backends.tflite.helpers import check, check_both_layouts, keras_style, model, weights

X = "float[N, 4, 5, 6] x"


def unary(expression: str, opset: int = 18):
    return f"g ({X}) => (float[N, 4, 5, 6] y) {{ y = {expression} }}", opset


UNARY = {
    "Relu": unary("Relu(x)"),
    "LeakyRelu": unary("LeakyRelu <alpha = 0.2> (x)"),
    "Clip relu6": unary("Clip(x, lo, hi)".replace("lo", "zero").replace("hi", "six")),
    "Sigmoid": unary("Sigmoid(x)"),
    "Tanh": unary("Tanh(x)"),
    "HardSigmoid": unary("HardSigmoid <alpha = 0.1666667, beta = 0.5> (x)"),
    "HardSigmoid default": unary("HardSigmoid(x)"),
    "HardSwish": unary("HardSwish(x)"),
    "Erf": unary("Erf(x)"),
    "Gelu": unary("Gelu(x)", opset=20),
    "Gelu tanh": unary('Gelu <approximate = "tanh"> (x)', opset=20),
    "Exp": unary("Exp(x)"),
    "Abs": unary("Abs(x)"),
    "Neg": unary("Neg(x)"),
    "Softmax channels": unary("Softmax <axis = 1> (x)"),
    "LogSoftmax channels": unary("LogSoftmax <axis = 1> (x)"),
    "Identity": unary("Identity(x)"),
}


@pytest.mark.parametrize("case", UNARY)
def test_unary(case, tmp_path):
    body, opset = UNARY[case]
    constants = {}
    if "zero" in body:  # Clip's bounds are inputs since opset 11
        body = body.replace(f"({X})", f"({X}, float zero, float six)")
        constants = {"zero": np.float32(0.0), "six": np.float32(6.0)}
    check_both_layouts(body, constants, tmp_path, atol=2e-5, opset=opset)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_over_width(op, tmp_path):
    """SOFTMAX takes the last axis; held NHWC, the width axis is not last: reductions, no transposes."""
    body, _ = unary(f"{op} <axis = -1> (x)")
    assert check(model(body), tmp_path) == [op.upper().replace("LOGS", "LOG_S")]
    check_both_layouts(body, None, tmp_path, atol=2e-5)


def test_clip_general_and_sqrt(tmp_path):
    body = f"""g ({X}, float lo, float hi) => (float[N, 4, 5, 6] y) {{
        a = Abs(x)
        s = Sqrt(a)
        y = Clip(s, lo, hi)
    }}"""
    check_both_layouts(body, {"lo": np.float32(0.3), "hi": np.float32(1.1)}, tmp_path)


BIAS = {"c": weights(4, 1, 1), "s": np.float32(1.5), "row": weights(6)}


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary_with_channel_constant(op, tmp_path):
    body = f"""g ({X}, float[4, 1, 1] c, float s, float[6] row) => (float[N, 4, 5, 6] y) {{
        a = {op}(x, c)
        b = {op}(a, s)
        y = {op}(row, b)
    }}"""
    constants = dict(BIAS, c=np.abs(BIAS["c"]) + 0.5) if op == "Div" else BIAS
    check_both_layouts(body, constants, tmp_path, atol=1e-4)


def test_binary_two_activations(tmp_path):
    body = f"""g ({X}, float[N, 4, 5, 6] z) => (float[N, 4, 5, 6] y) {{
        a = Add(x, z)
        b = Mul(a, z)
        y = Sub(b, x)
    }}"""
    check_both_layouts(body, None, tmp_path)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, 1.7])
def test_pow(exponent, tmp_path):
    body = f"""g ({X}, float e) => (float[N, 4, 5, 6] y) {{
        a = Abs(x)
        y = Pow(a, e)
    }}"""
    check(model(body, {"e": np.float32(exponent)}), tmp_path, atol=1e-4)


def test_where_and_comparisons(tmp_path):
    body = f"""g ({X}, float[4, 1, 1] c) => (float[N, 4, 5, 6] y) {{
        m = Greater(x, c)
        n = Not(m)
        y = Where(n, x, c)
    }}"""
    check_both_layouts(body, {"c": weights(4, 1, 1)}, tmp_path)


def test_prelu(tmp_path):
    body = f"g ({X}, float[4, 1, 1] slope) => (float[N, 4, 5, 6] y) {{ y = PRelu(x, slope) }}"
    check_both_layouts(body, {"slope": np.abs(weights(4, 1, 1))}, tmp_path)
    # One PRELU kernel (the converter fuses the pattern only with a slope that has no batch dim).
    assert check(keras_style(model(body, {"slope": np.abs(weights(4, 1, 1))})), tmp_path) == ["PRELU"]


def test_erf_gelu_pattern_becomes_one_gelu(tmp_path):
    """x * 0.5 * (1 + erf(x / sqrt 2)), as torch exports GELU before opset 20: the cleanup's FuseGelu makes
    it one Gelu, one GELU op in the file."""
    body = """g (float[N, 8, 16] x, float k, float one, float half) => (float[N, 8, 16] y) {
        d = Div(x, k)
        e = Erf(d)
        a = Add(e, one)
        m = Mul(half, a)
        y = Mul(x, m)
    }"""
    constants = {"k": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}
    ops = check(cleanup(model(body, constants)), tmp_path, atol=1e-5)
    assert ops == ["GELU"]

import pytest

from qconvert.passes.fuse_gelu import FuseGelu
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 8, opset_import: ["" : 18]>\n'
CONSTS = "float r2 = {1.4142135}, float inv = {0.70710677}, float one = {1.0}, float half = {0.5}"


def model(body: str):
    return parse(HEADER + f"g (float[N, 6] x) => (float[N, 6] y) <{CONSTS}> {{ {body} }}")


@pytest.mark.parametrize("body", [
    # torch.onnx's spelling: x * ((1 + erf(x / sqrt 2)) * 0.5)
    "d = Div(x, r2)\n e = Erf(d)\n a = Add(e, one)\n h = Mul(half, a)\n y = Mul(x, h)",
    # (x * (1 + erf(x * 1/sqrt 2))) * 0.5
    "d = Mul(x, inv)\n e = Erf(d)\n a = Add(one, e)\n m = Mul(x, a)\n y = Mul(m, half)",
    # (x * 0.5) * (1 + erf(x / sqrt 2))
    "d = Div(x, r2)\n e = Erf(d)\n a = Add(e, one)\n h = Mul(x, half)\n y = Mul(h, a)",
])
def test_the_erf_formula_becomes_one_gelu(body):
    result = check_pass_keeps_io(model(body), FuseGelu(), atol=1e-6)
    assert result.modified and ops(result.model) == ["Gelu"]
    assert result.model.opset_imports[""] == 20


@pytest.mark.parametrize("body", [
    # a different constant: not GELU
    "d = Div(x, half)\n e = Erf(d)\n a = Add(e, one)\n h = Mul(half, a)\n y = Mul(x, h)",
    # the Erf's output is used elsewhere too
    "d = Div(x, r2)\n e = Erf(d)\n a = Add(e, one)\n h = Mul(half, a)\n m = Mul(x, h)\n y = Add(m, e)",
])
def test_other_graphs_are_left_alone(body):
    result = check_pass_keeps_io(model(body), FuseGelu())
    assert not result.modified and "Gelu" not in ops(result.model)
    assert result.model.opset_imports[""] == 18

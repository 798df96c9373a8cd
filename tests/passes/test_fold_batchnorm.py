import numpy as np
import pytest

from qconvert.passes import FoldBatchNorm
from qconvert.passes.fold_batchnorm import check, match
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'
RNG = np.random.default_rng(0)


def const(name, *shape, low=-1.0, high=1.0):
    """An initializer declaration for the model text, with random values."""
    values = ", ".join(f"{v:.6f}" for v in RNG.uniform(low, high, shape).ravel())
    return f"float[{','.join(map(str, shape))}] {name} = {{{values}}}"


def bn_params(c):
    return ", ".join([
        const("gamma", c, low=0.5, high=1.5),
        const("beta", c),
        const("mean", c),
        const("var", c, low=0.5, high=1.5),
    ])


BN = "z = BatchNormalization<epsilon = 0.001>(y, gamma, beta, mean, var)"

FOLDABLE = {
    "conv_bias": (
        "g (float[N, 3, 6, 6] x) => (float[N, 4, 4, 4] z)",
        4,
        [const("W", 4, 3, 3, 3), const("B", 4)],
        ["y = Conv(x, W, B)"],
        ["Conv"],
    ),
    "conv_no_bias": (
        "g (float[N, 3, 6, 6] x) => (float[N, 4, 4, 4] z)",
        4,
        [const("W", 4, 3, 3, 3)],
        ["y = Conv(x, W)"],
        ["Conv"],
    ),
    "conv_grouped": (
        "g (float[N, 4, 6, 6] x) => (float[N, 6, 6, 6] z)",
        6,
        [const("W", 6, 2, 3, 3)],
        ["y = Conv<group = 2, pads = [1, 1, 1, 1]>(x, W)"],
        ["Conv"],
    ),
    "conv_depthwise": (
        "g (float[N, 4, 6, 6] x) => (float[N, 4, 4, 4] z)",
        4,
        [const("W", 4, 1, 3, 3), const("B", 4)],
        ["y = Conv<group = 4>(x, W, B)"],
        ["Conv"],
    ),
    "gemm_transB0": (
        "g (float[N, 5] x) => (float[N, 4] z)",
        4,
        [const("W", 5, 4), const("B", 4)],
        ["y = Gemm<alpha = 0.5, beta = 2.0>(x, W, B)"],
        ["Gemm"],
    ),
    "gemm_transB1_no_bias": (
        "g (float[N, 5] x) => (float[N, 4] z)",
        4,
        [const("W", 4, 5)],
        ["y = Gemm<transB = 1>(x, W)"],
        ["Gemm"],
    ),
    "gemm_scalar_bias": (
        "g (float[N, 5] x) => (float[N, 4] z)",
        4,
        [const("W", 4, 5), "float B = {0.5}"],
        ["y = Gemm<transB = 1>(x, W, B)"],
        ["Gemm"],
    ),
    "matmul": (
        "g (float[N, 5] x) => (float[N, 4] z)",
        4,
        [const("W", 5, 4)],
        ["y = MatMul(x, W)"],
        ["MatMul", "Add"],
    ),
    "matmul_add": (
        "g (float[N, 5] x) => (float[N, 4] z)",
        4,
        [const("W", 5, 4), const("B", 4)],
        ["m = MatMul(x, W)", "y = Add(B, m)"],
        ["MatMul", "Add"],
    ),
}


def build(signature, inits, body, channels, params=None, bn=BN):
    inits = ", ".join(inits + [params or bn_params(channels)])
    lines = "\n".join(body + [bn])
    return parse(HEADER + f"{signature} <{inits}> {{\n{lines}\n}}")


@pytest.mark.parametrize("case", FOLDABLE)
def test_folds(case):
    signature, channels, inits, body, expected = FOLDABLE[case]
    model = build(signature, inits, body, channels)
    assert check_pass_keeps_io(model, FoldBatchNorm()).modified
    assert ops(model) == expected
    assert model.graph.outputs[0].name == "z"


def test_folded_matmul_feeds_the_next_node():
    model = build(
        "g (float[N, 5] x) => (float[N, 4] out)",
        [const("W", 5, 4)],
        ["y = MatMul(x, W)"],
        4,
        bn=BN + "\nout = Relu(z)",
    )
    assert check_pass_keeps_io(model, FoldBatchNorm()).modified
    assert ops(model) == ["MatMul", "Add", "Relu"]
    assert model.graph.node(1).outputs[0].name == "y_bn"


def _conv_model(extra_output="", extra_body="", params=None, bn=BN):
    return build(
        f"g (float[N, 3, 6, 6] x) => (float[N, 4, 4, 4] z{extra_output})",
        [const("W", 4, 3, 3, 3), const("B", 4)],
        ["y = Conv(x, W, B)"] + ([extra_body] if extra_body else []),
        4,
        params=params,
        bn=bn,
    )


def _assert_not_folded(model, reason):
    before = ops(model)
    bn = next(n for n in model.graph if n.op_type == "BatchNormalization")
    assert reason in check(match(bn))
    assert not check_pass_keeps_io(model, FoldBatchNorm()).modified
    assert ops(model) == before


def test_not_folded_when_conv_output_has_another_consumer():
    model = _conv_model(", float[N, 4, 4, 4] r", "r = Relu(y)")
    _assert_not_folded(model, "another consumer")


def test_not_folded_when_conv_output_is_graph_output():
    model = _conv_model(", float[N, 4, 4, 4] y")
    _assert_not_folded(model, "another consumer")


def test_not_folded_when_bn_params_are_not_constant():
    model = parse(HEADER + f"""
        g (float[N, 3, 6, 6] x, float[4] mean) => (float[N, 4, 4, 4] z)
          <{const("W", 4, 3, 3, 3)}, {const("gamma", 4)}, {const("beta", 4)},
           {const("var", 4, low=0.5)}> {{
            y = Conv(x, W)
            {BN}
        }}""")
    _assert_not_folded(model, "not a constant")


def test_not_folded_when_weight_is_shared():
    model = _conv_model(", float[N, 4, 4, 4] y2", "y2 = Conv(x, W, B)")
    _assert_not_folded(model, "shared")


def test_not_folded_for_3d_matmul():
    # BatchNormalization normalizes axis 1 (here 3), not the weight's output axis (4).
    model = parse(HEADER + f"""
        g (float[N, 3, 5] x) => (float[N, 3, 4] z) <{const("W", 5, 4)}, {bn_params(3)}> {{
            y = MatMul(x, W)
            {BN}
        }}""")
    _assert_not_folded(model, "2-D")


def test_not_folded_in_training_mode():
    model = _conv_model(bn=BN.replace("<epsilon = 0.001>", "<training_mode = 1>"))
    bn = model.graph.node(1)
    assert "training mode" in check(match(bn))
    assert not FoldBatchNorm()(model).modified


def test_no_pattern_is_not_an_error():
    model = parse(HEADER + f"""
        g (float[N, 4, 6, 6] x) => (float[N, 4, 6, 6] z) <{bn_params(4)}> {{
            y = Relu(x)
            {BN}
        }}""")
    assert match(model.graph.node(1)) is None
    assert not check_pass_keeps_io(model, FoldBatchNorm()).modified

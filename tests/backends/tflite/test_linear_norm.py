"""Gemm, MatMul (2-D, batched, activation x activation) and the normalizations."""

import numpy as np
import pytest

from tests.backends.tflite.helpers import check, check_both_layouts, model, weights

GEMMS = {
    "transB bias": ("Gemm <transB = 1> (x, w, b)", (5, 12), (5,)),
    "alpha beta": ("Gemm <alpha = 0.5, beta = 2.0> (x, w, b)", (12, 5), (1, 5)),
    "transA": ("Gemm <transA = 1> (t, w, b)", (12, 5), (5,)),
    "no bias": ("Gemm(x, w)", (12, 5), None),
}


@pytest.mark.parametrize("case", GEMMS)
def test_gemm(case, tmp_path):
    expression, w_shape, b_shape = GEMMS[case]
    inputs = f"float[N, 12] x, float[{','.join(map(str, w_shape))}] w"
    constants = {"w": weights(*w_shape)}
    if b_shape:
        inputs += f", float[{','.join(map(str, b_shape))}] b"
        constants["b"] = weights(*b_shape, seed=3)
    body = f"""g ({inputs}) => (float[N, 5] y) {{
        t = Transpose(x)
        y = {expression}
    }}"""
    check(model(body, constants), tmp_path)


def test_matmul_constant_weights_2d_and_batched(tmp_path):
    body = """g (float[N, 7, 12] x, float[12, 6] w, float[6, 3] v) => (float[N, 7, 3] y) {
        h = MatMul(x, w)
        y = MatMul(h, v)
    }"""
    ops = check(model(body, {"w": weights(12, 6), "v": weights(6, 3)}), tmp_path)
    assert ops == ["FULLY_CONNECTED", "FULLY_CONNECTED"]


def test_matmul_of_activations_uses_transpose_flags(tmp_path):
    """Attention scores: q @ k^T, where k^T is an IR Transpose that becomes BATCH_MATMUL's adj_y."""
    body = """g (float[N, 2, 7, 8] q, float[N, 2, 7, 8] k) => (float[N, 2, 7, 7] y) {
        t = Transpose <perm = [0, 1, 3, 2]> (k)
        y = MatMul(q, t)
    }"""
    assert check(model(body), tmp_path, atol=2e-5) == ["BATCH_MATMUL"]


def test_matmul_vector_operand(tmp_path):
    body = """g (float[N, 3, 12] x, float[12] v) => (float[N, 3] y) { y = MatMul(x, v) }"""
    check(model(body, {"v": weights(12)}), tmp_path)


def test_batch_normalization_unfolded(tmp_path):
    body = """g (float[N, 4, 5, 6] x, float[4] s, float[4] b, float[4] m, float[4] v) => (float[N, 4, 5, 6] y) {
        y = BatchNormalization <epsilon = 0.001> (x, s, b, m, v)
    }"""
    constants = {"s": weights(4), "b": weights(4, seed=2), "m": weights(4, seed=3),
                 "v": np.abs(weights(4, seed=4)) + 0.5}
    check_both_layouts(body, constants, tmp_path)


def test_layer_normalization_last_axis(tmp_path):
    body = """g (float[N, 7, 16] x, float[16] s, float[16] b) => (float[N, 7, 16] y) {
        y = LayerNormalization <epsilon = 0.00001> (x, s, b)
    }"""
    check(model(body, {"s": weights(16), "b": weights(16, seed=2)}), tmp_path)


def test_layer_normalization_over_channels_and_space(tmp_path):
    body = """g (float[N, 4, 5, 6] x, float[4, 5, 6] s) => (float[N, 4, 5, 6] y) {
        y = LayerNormalization <axis = 1> (x, s)
    }"""
    check_both_layouts(body, {"s": weights(4, 5, 6)}, tmp_path)


def test_instance_normalization(tmp_path):
    body = """g (float[N, 4, 5, 6] x, float[4] s, float[4] b) => (float[N, 4, 5, 6] y) {
        y = InstanceNormalization(x, s, b)
    }"""
    check_both_layouts(body, {"s": weights(4), "b": weights(4, seed=2)}, tmp_path)


def test_group_norm_as_torch_exports_it(tmp_path):
    """Reshape -> InstanceNormalization -> Reshape -> affine: exact; the reshapes to and from groups
    mix channels with space, so an NHWC-held input pays one transpose each way."""
    body = """g (float[N, 8, 4, 4] x, int64[3] groups, int64[4] back, float[4] one, float[4] zero,
                 float[8, 1, 1] gamma) => (float[N, 8, 4, 4] y) {
        r = Reshape(x, groups)
        n = InstanceNormalization(r, one, zero)
        b = Reshape(n, back)
        y = Mul(b, gamma)
    }"""
    constants = {"groups": np.array([0, 4, -1], np.int64), "back": np.array([0, 8, 4, 4], np.int64),
                 "one": np.ones(4, np.float32), "zero": np.zeros(4, np.float32), "gamma": weights(8, 1, 1)}
    check(model(body, constants), tmp_path)

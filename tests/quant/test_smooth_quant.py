"""SmoothLayerNormMatMul on small graphs: the same function, the spread moved into the weights."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from qconvert.ir.metadata import get_meta
from qconvert.ir.values import constant_array, copy_model
from qconvert.passes.smooth_quant import META_KEY, SmoothLayerNormMatMul, prepare_for_dynamic
from tests.passes.helpers import check_pass_keeps_io, ops, parse, random_inputs, run

H, N = 8, 6
OUTLIER = 4  # channel index with a gain 60x the others


def encoder_block(consumers: str, outputs: str = "float[B, 5, 6] q, float[B, 5, 6] k",
                  x_shape: str = f"B, 5, {H}") -> ir.Model:
    """x -> LayerNorm (channel OUTLIER 60x) -> `consumers` with constant weights wq, wk, wg."""
    rng = np.random.default_rng(0)
    gamma = np.ones(H, np.float32) + 0.1 * rng.standard_normal(H).astype(np.float32)
    beta = 0.01 * rng.standard_normal(H).astype(np.float32)
    gamma[OUTLIER], beta[OUTLIER] = 60.0, 0.6

    def text(array):
        return ", ".join(f"{v:.6f}" for v in np.asarray(array).ravel())

    weights = {name: rng.standard_normal((H, N)).astype(np.float32) for name in ("wq", "wk")}
    inits = [f"float[{H}] gamma = {{{text(gamma)}}}", f"float[{H}] beta = {{{text(beta)}}}"]
    inits += [f"float[{H}, {N}] {name} = {{{text(w)}}}" for name, w in weights.items()]
    inits.append(f"float[{N}, {H}] wg = {{{text(rng.standard_normal((N, H)))}}}")
    return parse(f'<ir_version: 8, opset_import: ["" : 18]>\n'
                 f"g (float[{x_shape}] x) => ({outputs}) <{', '.join(inits)}> "
                 f"{{ y = LayerNormalization<axis = -1>(x, gamma, beta)\n {consumers} }}")


def test_layernorm_outliers_move_into_the_matmuls_and_the_residual_gets_y_back():
    model = encoder_block("q = MatMul(y, wq)\n k = MatMul(y, wk)\n r = Add(y, x)",
                          "float[B, 5, 6] q, float[B, 5, 6] k, float[B, 5, 8] r")
    before = {name: constant_array(model.graph.initializers[name]) for name in ("gamma", "wq")}
    result = check_pass_keeps_io(model, SmoothLayerNormMatMul(), atol=1e-4)
    after = result.model
    assert result.modified
    assert ops(after) == ["LayerNormalization", "Mul", "MatMul", "MatMul", "Add"]
    gamma = constant_array(after.graph.node(0).inputs[1])
    s = before["gamma"] / gamma
    # s_j = range_x^0.9 / range_w^0.1: most of the outlier channel's 60x gain moves into the weights.
    assert s[OUTLIER] / np.median(s) > 20
    assert np.abs(gamma).max() / np.median(np.abs(gamma)) < 5
    np.testing.assert_allclose(constant_array(after.graph.initializers["wq"]), before["wq"] * s[:, None], rtol=1e-6)
    assert list(get_meta(after, META_KEY)) == [after.graph.node(0).outputs[0].name]


def test_pre_layernorm_needs_no_mul_and_gemm_weights_scale_by_column():
    model = encoder_block("q = MatMul(y, wq)\n k = Gemm<transB = 1>(y, wg)", "float[B, 6] q, float[B, 6] k",
                          x_shape=f"B, {H}")
    wg = constant_array(model.graph.initializers["wg"])
    result = check_pass_keeps_io(model, SmoothLayerNormMatMul(), atol=1e-4)
    assert result.modified and ops(result.model) == ["LayerNormalization", "MatMul", "Gemm"]
    s = constant_array(model.graph.initializers["wq"]) / constant_array(result.model.graph.initializers["wq"])
    assert np.isfinite(s).all()
    gemm = result.model.graph.node(2)
    assert np.abs(constant_array(gemm.inputs[1])[:, OUTLIER]).max() > np.abs(wg[:, OUTLIER]).max() * 5


def test_a_reshape_between_is_not_a_weight_matmul_and_gets_y_back():
    model = encoder_block("q = MatMul(y, wq)\n f = Flatten<axis = 2>(y)", "float[B, 5, 6] q, float[B5, 8] f")
    result = check_pass_keeps_io(model, SmoothLayerNormMatMul(), atol=1e-4)
    assert ops(result.model) == ["LayerNormalization", "Mul", "MatMul", "Flatten"]


def test_a_layernorm_that_is_a_graph_output_keeps_its_name_and_value():
    model = encoder_block("q = MatMul(y, wq)", "float[B, 5, 6] q, float[B, 5, 8] y")
    result = check_pass_keeps_io(model, SmoothLayerNormMatMul(), atol=1e-4)
    assert ops(result.model) == ["LayerNormalization", "Mul", "MatMul"]
    assert result.model.graph.outputs[1].producer().op_type == "Mul"


def test_even_channels_and_layernorms_without_weight_matmuls_are_left_alone():
    model = encoder_block("q = MatMul(y, wq)\n k = MatMul(y, wk)")
    gamma = model.graph.initializers["gamma"]
    gamma.const_value = ir.tensor(np.ones(H, np.float32), name="gamma")
    assert not check_pass_keeps_io(model, SmoothLayerNormMatMul()).modified

    activations_only = encoder_block("t = Transpose<perm = [0, 2, 1]>(y)\n q = MatMul(y, t)",
                                     "float[B, 5, 5] q")
    assert not check_pass_keeps_io(activations_only, SmoothLayerNormMatMul()).modified


def test_a_second_run_changes_nothing_and_the_input_model_is_not_touched():
    model = encoder_block("q = MatMul(y, wq)\n k = MatMul(y, wk)\n r = Add(y, x)",
                          "float[B, 5, 6] q, float[B, 5, 6] k, float[B, 5, 8] r")
    original = ir.serde.serialize_model(model).SerializeToString()
    once = prepare_for_dynamic(model)
    assert ir.serde.serialize_model(model).SerializeToString() == original
    twice = prepare_for_dynamic(once)
    assert ops(twice) == ops(once)
    feeds = random_inputs(model)
    for want, got in zip(run(once, feeds), run(twice, feeds)):
        np.testing.assert_array_equal(got, want)
    onnx.checker.check_model(ir.serde.serialize_model(copy_model(twice)))

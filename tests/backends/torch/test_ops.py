"""Per-op emitter tests: one-node IRs (onnx.parser text) run by torch-fp32 against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.backends.targets import EmitOptions
from tests.backends.torch.helpers import emit_and_run
from tests.passes.helpers import parse, random_inputs, run

W = "float[4, 3, 3, 3] W = {" + ", ".join(str((i % 7 - 3) / 10) for i in range(108)) + "}"
B = "float[4] B = {0.1, -0.2, 0.3, 0.0}"


def graph(body: str, inputs: str, outputs: str, inits: str = "") -> str:
    return f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g ({inputs}) => ({outputs}) {'<' + inits + '>' if inits else ''} {{ {body} }}
    """


CASES = {
    "conv": graph("y = Conv <pads=[1,1,1,1]> (x, W, B)", "float[N, 3, 8, 8] x", "float[N, 4, 8, 8] y", f"{W}, {B}"),
    "conv_asym_pads_stride": graph("y = Conv <pads=[0,0,1,1], strides=[2,2]> (x, W, B)", "float[N, 3, 8, 8] x",
                                   "float[N, 4, 4, 4] y", f"{W}, {B}"),
    "conv_same_upper": graph("y = Conv <auto_pad=\"SAME_UPPER\", strides=[2,2]> (x, W)", "float[N, 3, 8, 8] x",
                             "float[N, 4, 4, 4] y", W),
    "conv_transpose": graph("y = ConvTranspose <strides=[2,2]> (x, W, B)", "float[N, 4, 5, 5] x",
                            "float[N, 3, 11, 11] y", f"{W}, float[3] B = {{0.1, 0.2, 0.3}}"),
    "gemm": graph("y = Gemm <transB=1, alpha=0.5, beta=2.0> (x, Wg, Bg)", "float[N, 3] x", "float[N, 2] y",
                  "float[2, 3] Wg = {1, 2, 3, 4, 5, 6}, float[2] Bg = {0.5, -1}"),
    "matmul_bias": graph("m = MatMul (x, Wm)\n y = Add (m, Bm)", "float[N, 5, 3] x", "float[N, 5, 2] y",
                         "float[3, 2] Wm = {1, 2, 3, 4, 5, 6}, float[2] Bm = {0.5, -1}"),
    "matmul_two_inputs": graph("y = MatMul (a, b)", "float[N, 2, 3, 4] a, float[N, 2, 4, 5] b",
                               "float[N, 2, 3, 5] y"),
    "relu_sigmoid_tanh": graph("r = Relu (x)\n s = Sigmoid (r)\n y = Tanh (s)", "float[N, 6] x", "float[N, 6] y"),
    "clip_leaky": graph("c = Clip (x, lo, hi)\n y = LeakyRelu <alpha=0.2> (c)", "float[N, 6] x", "float[N, 6] y",
                        "float lo = {-0.5}, float hi = {0.7}"),
    "softmax_erf": graph("s = Softmax <axis=1> (x)\n y = Erf (s)", "float[N, 6, 2] x", "float[N, 6, 2] y"),
    "arith": graph("a = Add (x, z)\n m = Mul (a, x)\n d = Div (m, k)\n y = Sub (d, z)",
                   "float[N, 4] x, float[N, 4] z", "float[N, 4] y", "float k = {3.0}"),
    "maxpool_avgpool": graph("m = MaxPool <kernel_shape=[2,2], strides=[2,2]> (x)\n"
                             " y = AveragePool <kernel_shape=[3,3], pads=[1,1,1,1]> (m)",
                             "float[N, 3, 8, 8] x", "float[N, 3, 4, 4] y"),
    "global_pool_flatten": graph("p = GlobalAveragePool (x)\n y = Flatten (p)", "float[N, 3, 8, 8] x",
                                 "float[N, 3] y"),
    "resize_nearest": graph("y = Resize <mode=\"nearest\", coordinate_transformation_mode=\"asymmetric\", "
                            "nearest_mode=\"floor\"> (x, , sc)", "float[N, 3, 4, 4] x", "float[N, 3, 8, 8] y",
                            "float[4] sc = {1, 1, 2, 2}"),
    "resize_nearest_half_pixel": graph("y = Resize <mode=\"nearest\", coordinate_transformation_mode="
                                       "\"tf_half_pixel_for_nn\", nearest_mode=\"floor\"> (x, , sc)",
                                       "float[N, 3, 4, 4] x", "float[N, 3, 12, 8] y", "float[4] sc = {1, 1, 3, 2}"),
    "resize_bilinear": graph("y = Resize <mode=\"linear\"> (x, , sc)", "float[N, 3, 4, 4] x",
                             "float[N, 3, 8, 8] y", "float[4] sc = {1, 1, 2, 2}"),
    "reshape_transpose_concat": graph("r = Reshape (x, sh)\n t = Transpose <perm=[0, 2, 1]> (r)\n"
                                      " y = Concat <axis=1> (t, t)", "float[N, 2, 6] x", "float[N, 6, 6] y",
                                      "int64[3] sh = {0, 3, 4}"),
    "depth_to_space_dcr_crd": graph("d = DepthToSpace <blocksize=2, mode=\"DCR\"> (x)\n"
                                    " y = DepthToSpace <blocksize=2, mode=\"CRD\"> (d)", "float[N, 16, 3, 4] x",
                                    "float[N, 1, 12, 16] y"),
    "space_to_depth": graph("y = SpaceToDepth <blocksize=2> (x)", "float[N, 3, 4, 6] x", "float[N, 12, 2, 3] y"),
    "squeeze_unsqueeze": graph("u = Unsqueeze (x, ax)\n y = Squeeze (u, ax)", "float[N, 4] x", "float[N, 4] y",
                               "int64[1] ax = {1}"),
    "layernorm": graph("y = LayerNormalization <axis=-1, epsilon=0.00001> (x, g, b)", "float[N, 5, 3] x",
                       "float[N, 5, 3] y", "float[3] g = {1, 2, 0.5}, float[3] b = {0, 0.1, -0.1}"),
    "batchnorm": graph("y = BatchNormalization (x, s, b, m, v)", "float[N, 2, 3, 3] x", "float[N, 2, 3, 3] y",
                       "float[2] s = {1, 2}, float[2] b = {0, 1}, float[2] m = {0.5, -0.5}, float[2] v = {1, 4}"),
    "reduce_mean": graph("y = ReduceMean <keepdims=0, axes=[1]> (x)", "float[N, 4, 5] x", "float[N, 5] y"),
    "gather_embedding": graph("y = Gather (E, ids)", "int64[N, 3] ids", "float[N, 3, 2] y",
                              "float[4, 2] E = {1, 2, 3, 4, 5, 6, 7, 8}"),
    "slice": graph("y = Slice (x, st, en, ax)", "float[N, 6] x", "float[N, 3] y",
                   "int64[1] st = {1}, int64[1] en = {4}, int64[1] ax = {1}"),
    # Exporters write "from the start" as INT64_MIN (ViT's x[:-2] on a shape), which TorchScript cannot parse.
    "slice_int64_min_start": graph("y = Slice (x, st, en, ax)", "float[N, 6] x", "float[N, 4] y",
                                   "int64[1] st = {-9223372036854775808}, int64[1] en = {-2}, int64[1] ax = {1}"),
    "slice_int64_min_step": graph("y = Slice (x, st, en, ax, sp)", "float[N, 6] x", "float[N, 3] y",
                                  "int64[1] st = {-1}, int64[1] en = {-9223372036854775808}, int64[1] ax = {1}, "
                                  "int64[1] sp = {-2}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, tmp_path):
    model = parse(CASES[case])
    feeds = random_inputs(model, seed=1)
    expected = run(model, feeds)
    actual, _ = emit_and_run(model, "torch-fp32", feeds, tmp_path)
    for e, a in zip(expected, actual):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, atol=1e-5, rtol=1e-5)


def test_unsupported_op_names_op_and_target(tmp_path):
    from qconvert.errors import UnsupportedOpError

    model = parse(graph("y, i, inv, c = Unique (x)", "float[N] x", "float[M] y, int64[M] i, int64[N] inv, int64[M] c"))
    with pytest.raises(UnsupportedOpError, match="Unique.*torch-fp32"):
        emit_and_run(model, "torch-fp32", random_inputs(model), tmp_path)


def test_refusal_gives_its_reason(tmp_path):
    from qconvert.errors import UnsupportedOpError

    model = parse(graph("y = Dropout (x, r, t)", "float[N, 4] x, bool t", "float[N, 4] y", "float r = {0.5}"))
    with pytest.raises(UnsupportedOpError, match=r"Dropout \(training-mode Dropout is random\)"):
        emit_and_run(model, "torch-fp32", random_inputs(model), tmp_path)


def test_registry_rejects_a_second_emitter():
    from qconvert.backends.torch.registry import emits, supported_ops

    assert "Conv" in supported_ops()
    with pytest.raises(RuntimeError, match="registered twice"):
        emits("Conv")(lambda b, node: None)


QDQ_CONV = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 3, 8, 8] x) => (float[N, 4, 4, 4] y)
<int8[4, 3, 3, 3] Wq = {WQ}, float[4] ws = {0.01, 0.02, 0.015, 0.03},
 int32[4] Bq = {100, -200, 50, 0}, float[4] bs = {0.0002, 0.0004, 0.0003, 0.0006},
 float xs = {0.02}, int8 xz = {3}, float cs = {0.05}, int8 cz = {-128}, int8[4] z4 = {0, 0, 0, 0},
 float ps = {0.05}, int8 pz = {-128}, int32[4] z32 = {0, 0, 0, 0}>
{
  xq = QuantizeLinear (x, xs, xz)
  xd = DequantizeLinear (xq, xs, xz)
  w = DequantizeLinear <axis=0> (Wq, ws, z4)
  b = DequantizeLinear <axis=0> (Bq, bs, z32)
  c = Conv <pads=[1,1,1,1]> (xd, w, b)
  r = Relu (c)
  rq = QuantizeLinear (r, cs, cz)
  rd = DequantizeLinear (rq, cs, cz)
  p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (rd)
  pq = QuantizeLinear (p, ps, pz)
  y = DequantizeLinear (pq, ps, pz)
}
""".replace("WQ", ", ".join(str((i * 37) % 255 - 127) for i in range(108)))


def test_int8_conv_relu_maxpool_uses_int8_kernels_and_matches_onnxruntime(tmp_path):
    model = parse(QDQ_CONV)
    feeds = random_inputs(model, seed=2)
    expected = run(model, feeds)
    actual, facts = emit_and_run(model, "torch-int8", feeds, tmp_path)
    quantization = facts["quantization"]
    assert quantization["int8_kernels"] == {"Conv": 1, "MaxPool": 1} and quantization["float_fallbacks"] == {}
    # Same integers up to one output step (requantization rounds in float in fbgemm, in int in ORT).
    assert np.abs(actual[0] - expected[0]).max() <= 0.05 + 1e-6
    assert np.mean(actual[0] == expected[0]) > 0.97


def test_dynamic_linear_is_close_to_float(tmp_path):
    model = parse(CASES["matmul_bias"])
    feeds = random_inputs(model, seed=3)
    expected = run(model, feeds)[0]
    actual, facts = emit_and_run(model, "torch-dynamic", feeds, tmp_path)
    assert facts["quantization"]["layers"] == 1
    cosine = np.sum(actual[0] * expected) / np.linalg.norm(actual[0]) / np.linalg.norm(expected)
    assert cosine > 0.999


def test_dynamic_shares_one_linear_between_matmuls_of_one_input(tmp_path):
    model = parse(graph("q = MatMul (x, Wq)\n k = MatMul (x, Wk)\n kb = Add (k, Bk)\n y = Add (q, kb)",
                        "float[N, 5, 3] x", "float[N, 5, 2] y",
                        "float[3, 2] Wq = {1, 2, 3, 4, 5, 6}, float[3, 2] Wk = {-1, 0.5, 2, 1, 0, 3}, "
                        "float[2] Bk = {0.5, -1}"))
    feeds = random_inputs(model, seed=4)
    expected = run(model, feeds)[0]
    actual, facts = emit_and_run(model, "torch-dynamic", feeds, tmp_path)
    assert facts["quantization"]["layers"] == 1
    assert np.abs(actual[0] - expected).max() < 0.05 * np.abs(expected).max()
    fp32, _ = emit_and_run(model, "torch-fp32", feeds, tmp_path)
    np.testing.assert_allclose(fp32[0], expected, atol=1e-5)


def test_int8_packs_for_qnnpack_when_asked(tmp_path):
    import torch

    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch build has no qnnpack")
    before = torch.backends.quantized.engine
    model = parse(QDQ_CONV)
    feeds = random_inputs(model, seed=2)
    try:
        actual, facts = emit_and_run(model, "torch-int8", feeds, tmp_path, EmitOptions(torch_engine="qnnpack"))
    finally:
        torch.backends.quantized.engine = before
    assert facts["engine"] == "qnnpack"
    assert np.abs(actual[0] - run(model, feeds)[0]).max() <= 0.05 + 1e-6

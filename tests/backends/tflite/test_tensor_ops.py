"""Shape and tensor ops, reductions, Resize and Pad, with their axes remapped for NHWC."""

import numpy as np
import pytest

from tests.backends.tflite.helpers import check, check_both_layouts, keras_style, model, weights

X = "float[N, 4, 6, 8] x"


def graph(body: str, output: str = "float[N, C, H, W] y", inputs: str = X) -> str:
    return f"g ({inputs}) => ({output}) {{\n{body}\n}}"


LAYOUT_AWARE = {
    "Concat channels + constant": (graph("y = Concat <axis = 1> (x, c, x)",
                                         inputs="float[2, 4, 6, 8] x, float[2, 2, 6, 8] c"),
                                   {"c": weights(2, 2, 6, 8)}),
    "Concat width": (graph("y = Concat <axis = -1> (x, x)"), None),
    "Split channels": (graph("a, b = Split <axis = 1, num_outputs = 2> (x, )\n y = Sub(a, b)"), None),
    "Split sizes": (graph("a, b = Split <axis = 2> (x, s)\n y = Concat <axis = 2> (b, a)", inputs=f"{X}, int64[2] s"),
                    {"s": np.array([2, 4], np.int64)}),
    "Slice channels and width": (graph("y = Slice(x, st, en, ax, sp)",
                                       inputs=f"{X}, int64[2] st, int64[2] en, int64[2] ax, int64[2] sp"),
                                 {"st": np.array([1, -1], np.int64), "en": np.array([3, -9999], np.int64),
                                  "ax": np.array([1, 3], np.int64), "sp": np.array([1, -2], np.int64)}),
    "Slice to end": (graph("y = Slice(x, st, en, ax)", inputs=f"{X}, int64[1] st, int64[1] en, int64[1] ax"),
                     {"st": np.array([2], np.int64), "en": np.array([2**62], np.int64),
                      "ax": np.array([2], np.int64)}),
    "Gather channels": (graph("y = Gather <axis = 1> (x, i)", inputs=f"{X}, int64[3] i"),
                        {"i": np.array([3, 0, -1], np.int64)}),
    "ReduceMean keepdims": (graph("y = ReduceMean <keepdims = 1> (x, a)", inputs=f"{X}, int64[2] a"),
                            {"a": np.array([2, 3], np.int64)}),
    "ReduceMean channels": (graph("y = ReduceMean <keepdims = 1> (x, a)", inputs=f"{X}, int64[1] a"),
                            {"a": np.array([1], np.int64)}),
    "ReduceSum and ReduceMax": (graph("s = ReduceSum <keepdims = 1> (x, a)\n y = ReduceMax <keepdims = 1> (s, a)",
                                      inputs=f"{X}, int64[1] a"), {"a": np.array([-1], np.int64)}),
    "Expand channel vector": (graph("e = Expand(c, s)\n y = Add(x, e)", inputs=f"{X}, float[4, 1, 1] c, int64[3] s"),
                              {"c": weights(4, 1, 1), "s": np.array([4, 6, 8], np.int64)}),
    "Pad constant": (graph("y = Pad(x, p, v)", inputs=f"{X}, int64[8] p, float v"),
                     {"p": np.array([0, 0, 1, 2, 0, 1, 3, 0], np.int64), "v": np.float32(0.5)}),
    "Pad reflect": (graph('y = Pad <mode = "reflect"> (x, p)', inputs=f"{X}, int64[8] p"),
                    {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)}),
    "Pad edge": (graph('y = Pad <mode = "edge"> (x, p)', inputs=f"{X}, int64[8] p"),
                 {"p": np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64)}),
    "Tile": (graph("y = Tile(x, r)", inputs=f"{X}, int64[4] r"), {"r": np.array([1, 2, 1, 2], np.int64)}),
    "DepthToSpace": (graph('y = DepthToSpace <blocksize = 2, mode = "DCR"> (x)'), None),
    "SpaceToDepth": (graph("y = SpaceToDepth <blocksize = 2> (x)"), None),
}


@pytest.mark.parametrize("case", LAYOUT_AWARE)
def test_layout_aware(case, tmp_path):
    body, constants = LAYOUT_AWARE[case]
    check_both_layouts(body, constants, tmp_path, atol=2e-5)


def resize(attributes: str, scales=(1, 1, 2, 2), sizes=None):
    if sizes is not None:
        body = graph(f"y = Resize <{attributes}> (x, , , s)", inputs=f"{X}, int64[4] s")
        return body, {"s": np.array(sizes, np.int64)}
    body = graph(f"y = Resize <{attributes}> (x, , s)", inputs=f"{X}, float[4] s")
    return body, {"s": np.array(scales, np.float32)}


RESIZES = {
    "nearest asymmetric floor (torch)": resize('mode = "nearest", coordinate_transformation_mode = "asymmetric", '
                                               'nearest_mode = "floor"'),
    "nearest tf_half_pixel_for_nn (tf2onnx)": resize('mode = "nearest", nearest_mode = "floor", '
                                                     'coordinate_transformation_mode = "tf_half_pixel_for_nn"'),
    "nearest half_pixel default": resize('mode = "nearest"'),
    "nearest downsample half_pixel (gather)": resize('mode = "nearest"', scales=(1, 1, 0.5, 0.5)),
    "nearest align_corners by sizes": resize('mode = "nearest", coordinate_transformation_mode = "align_corners", '
                                             'nearest_mode = "round_prefer_ceil"', sizes=(2, 4, 11, 13)),
    "bilinear half_pixel": resize('mode = "linear"'),
    "bilinear pytorch_half_pixel": resize('mode = "linear", coordinate_transformation_mode = "pytorch_half_pixel"'),
    "bilinear align_corners": resize('mode = "linear", coordinate_transformation_mode = "align_corners"'),
    "bilinear asymmetric down": resize('mode = "linear", coordinate_transformation_mode = "asymmetric"',
                                       scales=(1, 1, 0.5, 0.5)),
}


@pytest.mark.parametrize("case", RESIZES)
def test_resize(case, tmp_path):
    body, constants = RESIZES[case]
    check_both_layouts(body, constants, tmp_path, atol=2e-5)


def test_flatten_after_global_pool_needs_no_transpose(tmp_path):
    """[N, C, 1, 1] held as [N, 1, 1, C] has the same memory order: Flatten is a reshape."""
    body = graph("p = GlobalAveragePool(x)\n y = Flatten(p)", output="float[N, 4] y")
    assert "TRANSPOSE" not in check(keras_style(model(body)), tmp_path)


@pytest.mark.parametrize("flatten", ["f = Flatten(x)", "f = Reshape(x, s)"])
def test_flatten_into_dense_layers_permutes_weights_not_activations(flatten, tmp_path):
    body = graph(f"""
        {flatten}
        g = Gemm <transB = 1> (f, w)
        y = MatMul(f, v)""", output="float[N, 5] y", inputs=f"{X}, int64[2] s, float[5, 192] w, float[192, 5] v")
    body = body.replace("y = MatMul(f, v)", "m = MatMul(f, v)\n y = Add(g, m)")
    constants = {"s": np.array([0, -1], np.int64), "w": weights(5, 192), "v": weights(192, 5)}
    assert "TRANSPOSE" not in check(keras_style(model(body, constants)), tmp_path, atol=2e-5)


def test_flatten_read_by_another_op_is_still_exact(tmp_path):
    body = graph("""
        f = Flatten(x)
        g = Gemm <transB = 1> (f, w)
        r = Relu(f)
        y = ReduceSum <keepdims = 0> (r, one)""", output="float[N] y", inputs=f"{X}, float[5, 192] w, int64[1] one")
    body = body.replace("ReduceSum <keepdims = 0> (r, one)", "ReduceSum <keepdims = 0> (r, one)\n z = Relu(g)")
    constants = {"w": weights(5, 192), "one": np.array([1], np.int64)}
    check(keras_style(model(body, constants)), tmp_path, atol=2e-5)


def test_flatten_and_reshape_keep_nchw_meaning(tmp_path):
    body = graph("f = Flatten(x)\n y = Reshape(f, s)", output="float[N, 4, 48] y", inputs=f"{X}, int64[3] s")
    constants = {"s": np.array([0, 4, -1], np.int64)}
    check(model(body, constants), tmp_path)
    ops = check(keras_style(model(body, constants)), tmp_path)
    assert ops.count("TRANSPOSE") == 1  # back to NCHW once, before the Flatten


def test_squeeze_unsqueeze_transpose(tmp_path):
    body = graph("""
        p = ReduceMean <keepdims = 1> (x, a)
        s = Squeeze(p, q)
        u = Unsqueeze(s, q)
        t = Transpose <perm = [0, 2, 3, 1]> (u)
        y = Mul(t, t)""", output="float[N, 6, 1, 4] y", inputs=f"{X}, int64[1] a, int64[1] q")
    constants = {"a": np.array([3], np.int64), "q": np.array([3], np.int64)}
    check(model(body, constants), tmp_path)
    check(keras_style(model(body, constants)), tmp_path)


def test_shape_arithmetic_with_a_dynamic_batch(tmp_path):
    """Shape -> Gather -> Concat -> Reshape as exporters write a flatten: folded except for the batch."""
    body = graph("""
        s = Shape(x)
        n = Gather <axis = 0> (s, zero)
        u = Unsqueeze(n, axes)
        shape = Concat <axis = 0> (u, minus_one)
        y = Reshape(x, shape)""", output="float[N, 192] y",
                 inputs=f"{X}, int64 zero, int64[1] axes, int64[1] minus_one")
    constants = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
                 "minus_one": np.array([-1], np.int64)}
    check(model(body, constants), tmp_path)


def test_gather_embedding_with_integer_ids(tmp_path):
    body = """g (int64[N, 5] ids, float[10, 6] table) => (float[N, 6] y) {
        e = Gather <axis = 0> (table, ids)
        y = ReduceMean <keepdims = 0> (e, one)
    }"""
    body = body.replace("float[10, 6] table)", "float[10, 6] table, int64[1] one)")
    check(model(body, {"table": weights(10, 6), "one": np.array([1], np.int64)}), tmp_path)


def test_gather_scalar_index_drops_the_axis(tmp_path):
    body = graph("y = Gather <axis = 2> (x, i)", output="float[N, 4, 8] y", inputs=f"{X}, int64 i")
    constants = {"i": np.array(2, np.int64)}
    check(model(body, constants), tmp_path)
    check(keras_style(model(body, constants)), tmp_path)


def test_integer_outputs_come_back_as_int64(tmp_path):
    """TFLite carries int64 as int32; the session restores the IR's dtype."""
    body = graph("y = ArgMax <axis = 1, keepdims = 0> (x)", output="int64[N, 6, 8] y")
    check(model(body), tmp_path)  # check() compares dtypes too


def test_cast_and_argmax(tmp_path):
    body = graph("""
        a = ArgMax <axis = 1, keepdims = 0> (x)
        y = Cast <to = 1> (a)""", output="float[N, 6, 8] y")
    check(model(body), tmp_path)
    check(keras_style(model(body)), tmp_path)


def test_constant_node_and_identity(tmp_path):
    body = graph("""
        c = Constant <value = float[4, 1, 1] {1, 2, 3, 4}> ()
        i = Identity(x)
        y = Mul(i, c)""")
    check_both_layouts(body, None, tmp_path)

"""Shape arithmetic on the dynamic batch (Shape -> Gather -> Concat -> Reshape/Expand/Slice/Tile/Split/Pad/
Resize, Range, ConstantOfShape), as NCHW graphs and as Keras-style NHWC ones, at two batch sizes."""

import numpy as np
import pytest

from tests.backends.tflite.helpers import check, keras_style, model

X = "float[N, 3, 8, 8] x"
BATCH = """
    s = Shape(x)
    zero = Constant <value = int64[1] {0}> ()
    n = Gather <axis = 0> (s, zero)
"""


def graph(body: str, output: str = "float[N, C, H, W] y") -> str:
    return f"g ({X}) => ({output}) {{\n{BATCH}{body}\n}}"


CASES = {
    "Reshape to [N, -1] from the batch": graph("""
        rest = Constant <value = int64[1] {-1}> ()
        shape = Concat <axis = 0> (n, rest)
        flat = Reshape(x, shape)
        y = Relu(flat)""", "float[N, K] y"),
    "Reshape with 0 (copy) and a run-time dim": graph("""
        dims = Constant <value = int64[3] {0, 3, -1}> ()
        three = Constant <value = int64[1] {3}> ()
        w = Gather <axis = 0> (s, three)
        shape = Concat <axis = 0> (dims, w)
        r = Reshape(x, shape)
        y = Sigmoid(r)""", "float[N, 3, K, W] y"),
    "Expand to the batch": graph("""
        tail = Constant <value = int64[3] {3, 8, 8}> ()
        shape = Concat <axis = 0> (n, tail)
        c = Constant <value = float[1, 3, 1, 1] {0.5, -1, 2}> ()
        e = Expand(c, shape)
        y = Add(x, e)"""),
    "Slice with run-time ends": graph("""
        two = Constant <value = int64[1] {2}> ()
        h = Gather <axis = 0> (s, two)
        half = Div(h, two)
        starts = Constant <value = int64[2] {1, 0}> ()
        ends = Concat <axis = 0> (h, half)
        axes = Constant <value = int64[2] {2, 3}> ()
        y = Slice(x, starts, ends, axes)"""),
    "Tile with run-time repeats": graph("""
        one = Constant <value = int64[1] {1}> ()
        two = Constant <value = int64[1] {2}> ()
        repeats = Concat <axis = 0> (one, two, one, two)
        nn = Div(n, n)
        r2 = Mul(repeats, nn)
        y = Tile(x, r2)"""),
    "Split with run-time sizes": graph("""
        one = Constant <value = int64[1] {1}> ()
        nn = Div(n, n)
        a_size = Mul(one, nn)
        b_size = Add(a_size, a_size)
        sizes = Concat <axis = 0> (a_size, b_size)
        a, b = Split <axis = 1> (x, sizes)
        y = Concat <axis = 1> (b, a)"""),
    "Pad with run-time pads": graph("""
        nn = Div(n, n)
        p = Constant <value = int64[8] {0, 0, 1, 2, 0, 0, 0, 1}> ()
        pads = Mul(p, nn)
        y = Pad(x, pads)"""),
    "Resize to sizes built from the batch": graph("""
        tail = Constant <value = int64[3] {3, 16, 16}> ()
        sizes = Concat <axis = 0> (n, tail)
        y = Resize <mode = "nearest", coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"> (x, , , sizes)"""),
    "ConstantOfShape and Range on the batch": graph("""
        zero_s = Constant <value = int64 {0}> ()
        one_s = Constant <value = int64 {1}> ()
        ns = Squeeze(n)
        r = Range(zero_s, ns, one_s)
        rf = Cast <to = 1> (r)
        tail = Constant <value = int64[3] {1, 1, 1}> ()
        shape = Concat <axis = 0> (n, tail)
        ones = ConstantOfShape <value = float[1] {2}> (shape)
        rr = Reshape(rf, shape)
        w = Mul(ones, rr)
        y = Add(x, w)"""),
}


def _feeds(source, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    feeds = {}
    for value in source.graph.inputs:
        shape = [d if isinstance(d, int) else batch for d in value.shape]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("case", CASES)
def test_runtime_shape_arithmetic(case, tmp_path):
    for batch in (1, 3):
        nchw = model(CASES[case])
        check(nchw, tmp_path, atol=1e-5, feeds=_feeds(nchw, batch))
        nhwc = keras_style(model(CASES[case]))
        ops = check(nhwc, tmp_path, atol=1e-5, feeds=_feeds(nhwc, batch))
        # A Reshape keeps the IR's (NCHW) meaning, which needs the NCHW order. Known gap: the [N, 1, 1, 1]
        # map built by Range -> Reshape still meets the NHWC input through one TRANSPOSE.
        if "Reshape" not in case and "Range" not in case:
            assert "TRANSPOSE" not in ops, ops


def test_conv_after_a_reshape_to_a_runtime_shape(tmp_path):
    """YOLOv8's DFL: Reshape(x, [N, 4, 16, -1]) from the batch, then a 1x1 Conv. TensorFlow loses every
    dim through such a Reshape and TFLite cannot lower a Conv2D without its input channels; the dims
    the IR infers (after cleanup) are given back to it."""
    from qconvert.passes.pipelines import cleanup

    body = graph("""
        dfl = Constant <value = int64[3] {4, 16, -1}> ()
        shape = Concat <axis = 0> (n, dfl)
        r = Reshape(x, shape)
        t = Transpose <perm = [0, 2, 1, 3]> (r)
        sm = Softmax <axis = 1> (t)
        y = Conv(sm, w)""", "float[N, 1, 4, 3] y").replace(X, "float[N, 64, 3] x, float[1, 16, 1, 1] w")
    for batch in (1, 3):
        source = cleanup(model(body, {"w": np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1)}))
        check(source, tmp_path, atol=1e-4, feeds=_feeds(source, batch))

"""CumProd, Det, IsInf, NonZero and MaxUnpool in TFLite, against NumPy and ONNX's reference evaluator."""

import numpy as np
import onnx_ir as ir
import pytest
from onnx.reference import ReferenceEvaluator

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from qconvert.errors import UnsupportedOpError
from tests.backends.tflite.helpers import keras_style, model, op_names, run_tflite


def emit_and_run(source: ir.Model, feeds: dict[str, np.ndarray], tmp_path) -> tuple[list[np.ndarray], list[str]]:
    flatbuffer, facts = convert(source, "fp32", EmitOptions(), "tflite-fp32")
    return run_tflite(flatbuffer, facts, feeds, tmp_path), op_names(flatbuffer)


def reference(source: ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ReferenceEvaluator(ir.serde.serialize_model(source)).run(None, feeds)


def cumprod(x: np.ndarray, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    x = np.flip(x, axis) if reverse else x
    y = np.cumprod(x, axis=axis, dtype=np.float64)
    if exclusive:
        y = np.concatenate([np.ones_like(np.take(y, [0], axis)), np.delete(y, -1, axis)], axis)
    return np.flip(y, axis) if reverse else y


@pytest.mark.parametrize(("axis", "exclusive", "reverse"), [(1, 0, 0), (1, 1, 1), (3, 1, 0), (-2, 0, 1)])
def test_cumprod_on_a_channels_last_activation(axis, exclusive, reverse, tmp_path):
    """A Keras-style (NHWC-held) input with a dynamic batch: the IR axis is mapped to the held one."""
    body = (f"g (float[N, 5, 3, 7] x) => (float[N, 5, 3, 7] y) {{\n  a = Constant <value = int64 {{{axis}}}> ()\n"
            f"  y = CumProd <exclusive = {exclusive}, reverse = {reverse}> (x, a)\n}}")
    source = keras_style(model(body, opset=26))
    x = np.random.default_rng(0).uniform(0.5, 1.5, (2, 3, 7, 5)).astype(np.float32)  # NHWC, as fed
    (y,), ops = emit_and_run(source, {"x_nhwc": x}, tmp_path)
    want = np.transpose(cumprod(np.transpose(x, (0, 3, 1, 2)), axis, bool(exclusive), bool(reverse)), (0, 2, 3, 1))
    np.testing.assert_allclose(y, want, rtol=1e-5)
    assert "TRANSPOSE" not in ops


def test_cumprod_int32_with_an_axis_given_at_run_time(tmp_path):
    body = "g (int32[3, 9] x, int32 a) => (int32[3, 9] y) {\n  y = CumProd <exclusive = 1> (x, a)\n}"
    x = np.random.default_rng(1).integers(-3, 4, (3, 9)).astype(np.int32)
    for axis in (0, 1, -1):
        (y,), _ = emit_and_run(model(body, opset=26), {"x": x, "a": np.array(axis, np.int32)}, tmp_path)
        np.testing.assert_array_equal(y, cumprod(x, axis, True, False).astype(np.int32))


def test_det_up_to_six_by_six(tmp_path):
    rng = np.random.default_rng(2)
    for order in (1, 3, 4, 6):
        body = f"g (float[N, 2, {order}, {order}] x) => (float[N, 2] y) {{\n  y = Det(x)\n}}"
        x = rng.standard_normal((3, 2, order, order)).astype(np.float32)
        (y,), _ = emit_and_run(model(body, opset=22), {"x": x}, tmp_path)
        np.testing.assert_allclose(y, np.linalg.det(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


def test_det_beyond_six_by_six_is_refused(tmp_path):
    body = "g (float[7, 7] x) => (float y) {\n  y = Det(x)\n}"
    with pytest.raises(UnsupportedOpError, match="7x7 matrices"):
        emit_and_run(model(body, opset=22), {"x": np.eye(7, dtype=np.float32)}, tmp_path)


def test_is_inf_each_detection(tmp_path):
    largest = np.finfo(np.float32).max
    x = np.array([1.0, np.inf, -np.inf, np.nan, largest, -largest, 0.0, -3.0], np.float32)
    body = ("g (float[8] x) => (bool[8] both, bool[8] pos, bool[8] neg, bool[8] none) {\n  both = IsInf(x)\n"
            "  pos = IsInf <detect_negative = 0> (x)\n  neg = IsInf <detect_positive = 0> (x)\n"
            "  none = IsInf <detect_negative = 0, detect_positive = 0> (x)\n}")
    outputs, _ = emit_and_run(model(body, opset=20), {"x": x}, tmp_path)
    for got, want in zip(outputs, [np.isinf(x), x == np.inf, x == -np.inf, np.zeros(8, bool)], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float", "int8", "bool"])
def test_nonzero_count_known_only_at_run_time(dtype, tmp_path):
    values = np.array([[0, 1, 0, -2], [0, 0, 0, 0], [3, 0, np.nan, 1]], np.float32)
    x = values.astype(bool) if dtype == "bool" else np.nan_to_num(values).astype(np.int8) if dtype == "int8" else values
    body = f"g ({dtype}[3, 4] x) => (int64[2, M] y) {{\n  y = NonZero(x)\n}}"
    (y,), ops = emit_and_run(model(body, opset=13), {"x": x}, tmp_path)
    np.testing.assert_array_equal(y, np.array(np.nonzero(x)))
    assert y.dtype == np.int64 and "WHERE" in ops


def test_max_unpool_with_repeated_indices_and_a_dynamic_batch(tmp_path):
    """Overlapping MaxPool windows name one position twice, with the same value: placed once, not summed."""
    body = ("g (float[N, 2, 2, 2] v, int64[N, 2, 2, 2] i) => (float[N, 2, 3, 3] y) {\n"
            "  y = MaxUnpool <kernel_shape = [2, 2], strides = [1, 1]> (v, i)\n}")
    source = model(body, opset=22)
    rng = np.random.default_rng(3)
    v = rng.standard_normal((2, 2, 2, 2)).astype(np.float32)
    planes = np.arange(4)[:, None, None] * 9  # (n, c) plane offsets into the 2x2x3x3 output
    within = np.array([[4, 4], [6, 8]])  # position 4 (the centre) is the maximum of two windows
    i = (planes + within).reshape(2, 2, 2, 2).astype(np.int64)
    v[:, :, 0, 1] = v[:, :, 0, 0]  # a MaxPool repeats the same value for a repeated index
    (y,), ops = emit_and_run(source, {"v": v, "i": i}, tmp_path)
    np.testing.assert_array_equal(y, reference(source, {"v": v, "i": i})[0])
    assert "SCATTER_ND" in ops


def test_max_unpool_to_a_larger_output_shape(tmp_path):
    body = ("g (float[1, 1, 2, 2] v, int64[1, 1, 2, 2] i) => (float[1, 1, 5, 6] y) {\n"
            "  s = Constant <value = int64[4] {1, 1, 5, 6}> ()\n"
            "  y = MaxUnpool <kernel_shape = [2, 2], strides = [2, 2]> (v, i, s)\n}")
    source = model(body, opset=22)
    feeds = {"v": np.array([[[[5, 6], [7, 8]]]], np.float32), "i": np.array([[[[0, 3], [9, 14]]]], np.int64)}
    (y,), _ = emit_and_run(source, feeds, tmp_path)
    np.testing.assert_array_equal(y, reference(source, feeds)[0])

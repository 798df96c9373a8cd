"""Bit ops in TFLite (BitwiseAnd/Or/Xor/Not, BitShift): exact over the whole range of each integer type,
against NumPy's own bit arithmetic, and built from builtin kernels only."""

import numpy as np
import pytest

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from qconvert.errors import UnsupportedOpError
from tests.backends.tflite.helpers import model, op_names, run_tflite

OPSET = 28  # BitShift on signed types


def emit_and_run(body: str, feeds: dict[str, np.ndarray], tmp_path) -> tuple[list[np.ndarray], list[str]]:
    flatbuffer, facts = convert(model(body, opset=OPSET), "fp32", EmitOptions(), "tflite-fp32")
    return run_tflite(flatbuffer, facts, feeds, tmp_path), op_names(flatbuffer)


def extremes(dtype, size: int, seed: int) -> np.ndarray:
    """Random values over the type's whole range, with its minimum, maximum, 0 and -1 (or all ones)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    values = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
    values[:4] = np.array([info.min, info.max, 0, info.max if info.min == 0 else -1]).astype(dtype)
    return values


@pytest.mark.parametrize("dtype", ["int32", "uint32", "int8", "uint16"])
def test_and_or_xor_not_exact_over_the_range(dtype, tmp_path):
    a, b = extremes(dtype, 64, seed=1), extremes(dtype, 64, seed=2)
    b[4:8] = a[:4]  # every extreme against every other
    body = (f"g ({dtype}[64] a, {dtype}[64] b) => ({dtype}[64] n, {dtype}[64] o, {dtype}[64] x, {dtype}[64] t) {{\n"
            "  n = BitwiseAnd(a, b)\n  o = BitwiseOr(a, b)\n  x = BitwiseXor(a, b)\n  t = BitwiseNot(a)\n}")
    outputs, ops = emit_and_run(body, {"a": a, "b": b}, tmp_path)
    for got, want in zip(outputs, [a & b, a | b, a ^ b, ~a], strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.dtype(dtype)
    assert "BITWISE_XOR" in ops


def onnx_shift(x: np.ndarray, y: np.ndarray, left: bool) -> np.ndarray:
    """ONNX BitShift: a negative amount or one of at least the width gives the sign fill (right) or 0."""
    width = x.dtype.itemsize * 8
    amount = y.astype(np.int64)
    in_range = (amount >= 0) & (amount < width)
    safe = np.where(in_range, amount, 0).astype(x.dtype)
    shifted = (x << safe) if left else (x >> safe)
    fill = np.zeros_like(x) if left else np.where(x < 0, -1, 0).astype(x.dtype)
    return np.where(in_range, shifted, fill).astype(x.dtype)


@pytest.mark.parametrize("dtype", ["int32", "uint32", "int8", "uint8", "int16"])
def test_bit_shift_exact_over_the_range(dtype, tmp_path):
    width = np.dtype(dtype).itemsize * 8
    x = extremes(dtype, 96, seed=3)
    low = -3 if np.iinfo(dtype).min < 0 else 0
    y = np.resize(np.arange(low, width + 3), 96).astype(dtype)  # every amount, a few out of range
    body = (f'g ({dtype}[96] x, {dtype}[96] s) => ({dtype}[96] left, {dtype}[96] right) {{\n'
            '  left = BitShift <direction = "LEFT"> (x, s)\n  right = BitShift <direction = "RIGHT"> (x, s)\n}')
    (left, right), ops = emit_and_run(body, {"x": x, "s": y}, tmp_path)
    np.testing.assert_array_equal(left, onnx_shift(x, y, left=True))
    np.testing.assert_array_equal(right, onnx_shift(x, y, left=False))
    assert "RIGHT_SHIFT" in ops


def test_bit_shift_by_a_constant_broadcasts(tmp_path):
    x = extremes("int32", 12, seed=4).reshape(3, 4)
    body = ('g (int32[3, 4] x) => (int32[3, 4] y) {\n  s = Constant <value = int32[4] {0, 1, 17, 31}> ()\n'
            '  y = BitShift <direction = "LEFT"> (x, s)\n}')
    (z,), _ = emit_and_run(body, {"x": x}, tmp_path)
    np.testing.assert_array_equal(z, onnx_shift(x, np.array([0, 1, 17, 31], np.int32), True))


def test_uint64_complement_is_refused(tmp_path):
    body = "g (uint64[4] x) => (uint64[4] y) {\n  y = BitwiseNot(x)\n}"
    with pytest.raises(UnsupportedOpError, match="uint64"):
        emit_and_run(body, {"x": np.arange(4, dtype=np.uint64)}, tmp_path)

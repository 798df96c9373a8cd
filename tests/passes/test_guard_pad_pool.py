"""GuardPadBeforePool: a zero Pad -> MaxPool keeps its meaning in onnxruntime at full optimization."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest

from qconvert.passes.guard_pad_pool import GuardPadBeforePool
from tests.passes.helpers import check_pass_keeps_io, parse

PAD_POOL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N,2,6,6] x) => (float[N,2,3,3] y) {{
  p = Constant<value=int64[8] {{0,0,1,1,0,0,1,1}}>()
  z = Pad<mode="{mode}">(x, p)
  y = {pool}<kernel_shape=[3,3], strides=[2,2], pads=[0,0,0,0]{extra}>(z)
}}"""


def _model(pool: str = "MaxPool", mode: str = "constant", extra: str = "") -> ir.Model:
    return parse(PAD_POOL.format(pool=pool, mode=mode, extra=extra))


def _run_optimized(model: ir.Model, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    proto = ir.serde.serialize_model(model).SerializeToString()
    return ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _negative_input() -> np.ndarray:
    return -np.abs(np.random.default_rng(0).standard_normal((2, 2, 6, 6))).astype(np.float32) - 0.1


@pytest.mark.parametrize(("pool", "extra"), [("MaxPool", ""), ("AveragePool", ", count_include_pad=0")])
def test_pool_after_zero_pad_keeps_its_result_in_optimized_onnxruntime(pool, extra):
    model = _model(pool, extra=extra)
    result = check_pass_keeps_io(model, GuardPadBeforePool(), atol=0)  # unoptimized: same outputs
    assert result.modified
    node = next(n for n in result.model.graph if n.op_type == pool)
    assert "pads" not in node.attributes and node.attributes.get_string("auto_pad") == "VALID"
    # The border windows hold only negative values: zero padding must win the max there.
    x = _negative_input()
    expected = _run_optimized(result.model, x)
    reference = _reference(pool, x)
    np.testing.assert_allclose(expected, reference, rtol=0, atol=1e-6)


def _reference(pool: str, x: np.ndarray) -> np.ndarray:
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return windows.max(axis=(-1, -2)) if pool == "MaxPool" else windows.mean(axis=(-1, -2))


@pytest.mark.parametrize(("pool", "mode", "extra"), [
    ("AveragePool", "constant", ", count_include_pad=1"),  # fusing it is exact
    ("MaxPool", "reflect", ""),  # not a zero pad
])
def test_does_not_fire(pool, mode, extra):
    assert not GuardPadBeforePool()(_model(pool, mode, extra)).modified


def test_does_not_fire_when_the_pool_pads_by_itself():
    model = parse(PAD_POOL.format(pool="MaxPool", mode="constant", extra="").replace("pads=[0,0,0,0]", "pads=[1,1,1,1]"))
    assert not GuardPadBeforePool()(model).modified

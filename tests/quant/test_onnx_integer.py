"""onnx-qdq runs every Conv, Gemm, MatMul, Add and Mul as an integer kernel: read from onnxruntime's
optimized graph (qconvert.backends.onnx.integer_check), not from the file."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qconvert.backends.onnx.integer_check import float_compute_ops, optimized_graph
from qconvert.backends.onnx.qdq_lowering import lower_for_onnxruntime
from qconvert.passes import prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import run
from tests.quant import cnn_blocks
from tests.quant.graphs import with_weights


def lowered(model: ir.Model, config: QuantConfig = QuantConfig()) -> tuple[onnx.ModelProto, ir.Model]:
    """The onnx-qdq file's graph for `model`, prepared, calibrated and lowered as `qconvert` does."""
    model = prepare_for_int8(model)
    qdq = quantize_static(model, cnn_blocks.random_feeds(model), config)
    return ir.serde.serialize_model(lower_for_onnxruntime(qdq)), model


def integer_kernels(proto: onnx.ModelProto) -> list[str]:
    """The model's own integer kernels, without the 1x1 layers that interleave a graph input or a signed
    tensor for x86's int16 pair sums (qdq_lowering rewrite 6, tested in tests/backends)."""
    return sorted(n.op_type for n in optimized_graph(proto).graph.node
                  if n.op_type.startswith(("QLinear", "QGemm")) and "_interleave" not in n.name)


@pytest.mark.parametrize("block, kernels", [
    ("residual", ["QLinearAdd", "QLinearAdd", "QLinearConv", "QLinearConv", "QLinearConv"]),
    ("squeeze_excite", ["QLinearConv", "QLinearConv", "QLinearConv", "QLinearGlobalAveragePool", "QLinearMul",
                        "QLinearMul", "QLinearSigmoid", "QLinearSigmoid"]),
    ("depthwise", ["QLinearConv", "QLinearConv"]),
])
def test_blocks_run_integer_in_onnxruntime(block, kernels):
    proto, model = lowered(getattr(cnn_blocks, block)())
    assert float_compute_ops(proto) == []
    assert integer_kernels(proto) == kernels
    feeds = cnn_blocks.random_feeds(model, samples=4, seed=2)
    assert sqnr_db(run(model, feeds)[0], run(proto, feeds)[0]) > 25


def test_hardswish_block_leaves_only_onnxruntimes_own_hardswish_float():
    """onnxruntime has no integer HardSwish: it runs it as float x·HardSigmoid(x) between DQ and Q (the
    one float Mul, a node of its own with no name). The Mul written as x·HardSigmoid(x) is integer."""
    proto, _ = lowered(cnn_blocks.hardswish())
    assert float_compute_ops(proto) == [("Mul", "")]
    assert integer_kernels(proto) == ["QGemm", "QLinearConv", "QLinearConv", "QLinearGlobalAveragePool",
                                      "QLinearMul"]


KERAS_BLOCK = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,6,6] x, float[8,8,1,1] W, float[8,1,3,3] Wd, float[8] gamma, float[8] beta, float[8] mean, float[8] var)
  => (float[N,8,6,6] y) <float three = {3.0}, float sixth = {0.16666667}, float lo = {0.0}, float hi = {6.0}> {
  c = Conv (x, W)
  a = Add (c, x)
  n = BatchNormalization (a, gamma, beta, mean, var)
  h = Add (n, three)
  r = Clip (h, lo, hi)
  d = Mul (r, sixth)
  s = Mul (n, d)
  y = Conv <group=8, pads=[1,1,1,1]> (s, Wd)
}
"""


def test_keras_batchnorm_after_add_and_hardswish_from_scalars_run_integer():
    """A BatchNormalization after a residual Add becomes one depthwise Conv (ChannelAffineToConv); Keras
    HardSwish x·relu6(x + 3)/6 runs as QLinearAdd and QLinearMul with exact scalar constants."""
    model = with_weights(KERAS_BLOCK, W=(8, 8, 1, 1), Wd=(8, 1, 3, 3), gamma=(8,), beta=(8,), mean=(8,), var=(8,))
    var = model.graph.initializers["var"]
    var.const_value = ir.tensor(np.abs(var.const_value.numpy()) + 0.1, name="var")
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(ir.serde.serialize_model(model)))
    proto, prepared = lowered(model)
    assert float_compute_ops(proto) == []
    assert integer_kernels(proto) == ["QLinearAdd", "QLinearAdd", "QLinearConv", "QLinearConv", "QLinearConv",
                                      "QLinearMul", "QLinearMul"]
    feeds = cnn_blocks.random_feeds(prepared, samples=4, seed=2)
    assert sqnr_db(run(prepared, feeds)[0], run(proto, feeds)[0]) > 25


SPATIAL_MEANS = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[N,16,4,4] x, float[16,16,1,1] W, float[8,16] Wf) => (float[N,8] y, float[N,16,1,1] k)
  <int64[2] spatial = {2, 3}> {
  c = Conv (x, W)
  r = Relu (c)
  k = ReduceMean <keepdims=1> (r, spatial)
  m = ReduceMean <keepdims=0> (r, spatial)
  y = Gemm <transB=1> (m, Wf)
}
"""


def test_spatial_reducemean_runs_as_integer_global_average_pool():
    """torchvision's adaptive_avg_pool2d exports as ReduceMean over H, W: onnxruntime has no integer
    ReduceMean, the lowering writes it as GlobalAveragePool (and a Squeeze for keepdims=0)."""
    model = with_weights(SPATIAL_MEANS, W=(16, 16, 1, 1), Wf=(8, 16))
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(ir.serde.serialize_model(model)))
    proto, prepared = lowered(model)
    assert [n.op_type for n in proto.graph.node].count("ReduceMean") == 0
    assert float_compute_ops(proto) == []
    assert integer_kernels(proto) == ["QGemm", "QLinearConv", "QLinearGlobalAveragePool", "QLinearGlobalAveragePool"]
    feeds = cnn_blocks.random_feeds(prepared, samples=4, seed=2)
    for want, got in zip(run(prepared, feeds), run(proto, feeds)):
        assert sqnr_db(want, got) > 30

"""QDQ placement for what modern CNNs contain: residual Add(+Relu), Mul of activations, SE blocks,
HardSwish, depthwise Convs, fixed output scales, same-scale ops (op lists and numbers asserted)."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qconvert.passes.insert_qdq import InsertQDQ
from qconvert.quant.calibrate import calibrate
from qconvert.quant.config import QuantConfig
from qconvert.quant.plan import FIXED_OUTPUT, SAME_SCALE_OPS, plan_quantization
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import ops, run
from tests.quant import cnn_blocks
from tests.quant.graphs import with_weights

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def quantize(model, config=QuantConfig(), exclude=frozenset()):
    feeds = cnn_blocks.random_feeds(model)
    reference = ir.serde.serialize_model(model)
    result = InsertQDQ(ranges=calibrate(model, feeds, config), config=config, exclude=exclude)(model)
    onnx.checker.check_model(ir.serde.serialize_model(result.model))
    return result.model, reference, feeds


def compute_ops(model):
    """The op list without QDQ and Constant nodes: the ops the quantized function computes."""
    return [op for op in ops(model) if op not in (Q, DQ, "Constant")]


def quantized_outputs(model) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of each quantized tensor, by the float tensor's name."""
    found = {}
    for node in model.graph:
        if node.op_type == Q:
            found[node.inputs[0].name] = (float(node.inputs[1].const_value.numpy()),
                                          int(node.inputs[2].const_value.numpy()))
    return found


def inferred(model: ir.Model) -> ir.Model:
    """With onnx's inferred shapes (the plan reads ranks, as after cleanup)."""
    return ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(ir.serde.serialize_model(model)))


def test_residual_add_with_and_without_relu():
    model, reference, feeds = quantize(cnn_blocks.residual())
    assert ops(model) == [Q, DQ, DQ, DQ, "Conv", "Relu", Q, DQ, DQ, DQ, "Conv", Q, DQ, "Add", "Relu", Q, DQ,
                          DQ, "Conv", Q, DQ, "Add", Q, DQ, "Identity"]
    add = next(n for n in model.graph if n.op_type == "Add")
    # Add + Relu is one unit: the Relu reads the Add, and both Add inputs are dequantized int8.
    relu = list(add.outputs[0].uses())[0].node
    assert relu.op_type == "Relu" and [v.producer().op_type for v in add.inputs] == [DQ, DQ]
    assert set(quantized_outputs(model)) == {"x", "r1", "c2", "r", "c3", "t"}
    assert sqnr_db(run(reference, feeds)[0], run(model, feeds)[0]) > 30


def test_silu_and_squeeze_excite_mul_with_fixed_sigmoid_scale():
    model, reference, feeds = quantize(cnn_blocks.squeeze_excite())
    assert compute_ops(model) == ["Conv", "Sigmoid", "Mul", "GlobalAveragePool", "Conv", "Relu", "Conv", "Sigmoid",
                                  "Mul"]
    params = quantized_outputs(model)
    assert params["sig"] == params["g"] == (1 / 256, -128)  # TFLite LOGISTIC's output scale
    for mul in (n for n in model.graph if n.op_type == "Mul"):
        assert [v.producer().op_type for v in mul.inputs] == [DQ, DQ]
    # GlobalAveragePool keeps its input's scale: one set of initializers.
    pool_q = next(n for n in model.graph if n.op_type == Q and n.inputs[0].name == "p")
    a_q = next(n for n in model.graph if n.op_type == Q and n.inputs[0].name == "a")
    assert pool_q.inputs[1] is a_q.inputs[1] and pool_q.inputs[2] is a_q.inputs[2]
    assert sqnr_db(run(reference, feeds)[0], run(model, feeds)[0]) > 25


def test_hardswish_block_and_depthwise_per_channel():
    model, reference, feeds = quantize(cnn_blocks.hardswish())
    assert compute_ops(model) == ["Conv", "HardSigmoid", "Mul", "Conv", "HardSwish", "GlobalAveragePool", "Flatten",
                                  "Gemm"]
    assert set(quantized_outputs(model)) == {"x", "c", "h", "a", "d", "e", "p", "f", "y_float"}
    depthwise = [n for n in model.graph if n.op_type == "Conv"][1]
    weight_dq = depthwise.inputs[1].producer()
    assert weight_dq.attributes.get_int("axis") == 0
    assert weight_dq.inputs[1].const_value.numpy().shape == (16,)  # one scale per channel
    assert depthwise.inputs[2].producer().inputs[0].const_value.numpy().dtype == np.int32
    assert sqnr_db(run(reference, feeds)[0], run(model, feeds)[0]) > 25


ACTIVATIONS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8] x, float[8,8] W, float[8] S) => (float[N,8] t, float[N,8] s, float[N,8] p, float[N,8] l) {
  h = Gemm <transB=1> (x, W)
  t = Tanh (h)
  s = Softmax <axis=1> (h)
  p = PRelu (h, S)
  l = LeakyRelu <alpha=0.1> (h)
}
"""


@pytest.mark.parametrize("dtype, sigmoid_zero, tanh_zero", [("int8", -128, 0), ("uint8", 0, 128)])
def test_fixed_output_scales_tanh_softmax_and_prelu_one_op(dtype, sigmoid_zero, tanh_zero):
    model, reference, feeds = quantize(with_weights(ACTIVATIONS, W=(8, 8), S=(8,)), QuantConfig(activation_dtype=dtype))
    assert compute_ops(model) == ["Gemm", "Tanh", "Softmax", "PRelu", "LeakyRelu"]
    params = quantized_outputs(model)
    assert params["t_float"] == (1 / 128, tanh_zero)
    assert params["s_float"] == (1 / 256, sigmoid_zero)
    assert FIXED_OUTPUT["Tanh"].params(dtype) == (np.float32(1 / 128), tanh_zero)
    assert params["p_float"] != params["h"] and params["l_float"] != params["h"]  # their own scales
    prelu = next(n for n in model.graph if n.op_type == "PRelu")
    slope = prelu.inputs[1].producer()
    assert slope.op_type == DQ and slope.inputs[0].const_value.numpy().dtype == np.int8
    for want, got in zip(run(reference, feeds), run(model, feeds)):
        assert sqnr_db(want, got) > 25


SAME_SCALE = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[N,3,8,8] x, float[8,3,3,3] W) => (float[N,8,4,4] y, float[N,4,1,1] m)
  <int64[8] pads = {0, 0, 1, 1, 0, 0, 0, 0}, int64[2] starts = {0, 0}, int64[2] ends = {2, 2}, int64[2] axes = {2, 3},
   float[4] scales = {1.0, 1.0, 2.0, 2.0}, int64[2] spatial = {2, 3}> {
  c = Conv <pads=[1,1,1,1]> (x, W)
  r = Relu (c)
  p = Pad (r, pads)
  mp = MaxPool <kernel_shape=[3,3], strides=[2,2]> (p)
  a, b = Split <num_outputs=2, axis=1> (mp)
  s = Slice (a, starts, ends, axes)
  u = Resize <mode="linear"> (s, , scales)
  k = Concat <axis=1> (u, b)
  av = AveragePool <kernel_shape=[2,2], strides=[1,1], pads=[0,0,1,1]> (k)
  y = Identity (av)
  m = ReduceMean <keepdims=1> (b, spatial)
}
"""


def test_same_scale_ops_share_the_layer_output_scale():
    model = inferred(with_weights(SAME_SCALE, W=(8, 3, 3, 3)))
    model, reference, feeds = quantize(model)
    assert compute_ops(model) == ["Conv", "Relu", "Pad", "MaxPool", "Split", "Slice", "Resize", "Concat",
                                  "AveragePool", "Identity", "ReduceMean"]
    quantizers = [n for n in model.graph if n.op_type == Q and n.inputs[0].name != "x"]
    assert sorted(n.inputs[0].name for n in quantizers) == sorted(
        ["r", "p", "mp", "a", "b", "s", "u", "k", "av", "m_float"])
    assert len({n.inputs[1] for n in quantizers}) == 1  # one scale from the Relu to the pools
    assert {"Pad", "Split", "Slice", "Resize", "Concat", "AveragePool", "ReduceMean"} <= SAME_SCALE_OPS
    for want, got in zip(run(reference, feeds), run(model, feeds)):
        assert sqnr_db(want, got) > 30


NOT_SAME_SCALE = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[N,3,8,8] x, float[8,3,3,3] W) => (float[N,8,10,10] y, float[N,8,12,12] u, float[N,8] m, float[N,6,6] n)
  <int64[8] pads = {0, 0, 2, 2, 0, 0, 2, 2}, float one = {1.0}, float[4] scales = {1.0, 1.0, 2.0, 2.0},
   int64[2] spatial = {2, 3}, int64[1] channels = {1}> {
  c = Conv (x, W)
  y = Pad (c, pads, one)
  u = Resize <mode="cubic"> (c, , scales)
  m = ReduceMean <keepdims=0> (c, spatial)
  n = ReduceMean <keepdims=0> (c, channels)
}
"""


def test_ops_that_would_leave_the_range_stay_float():
    """A Pad by a non-zero value, a cubic Resize (it overshoots), a mean that is not over H and W."""
    model = inferred(with_weights(NOT_SAME_SCALE, W=(8, 3, 3, 3)))
    plan = plan_quantization(model.graph)
    # ReduceMean with keepdims=0 over H, W still is a spatial mean: same scale. The rest (and a mean over
    # channels) stay float.
    assert sorted(t.name for t in plan.tensors) == ["c", "m", "x"]


CONCAT_FIXED = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,4,4] x, float[4,3,1,1] W1, float[4,3,1,1] W2) => (float[N,8,4,4] y) {
  a = Conv (x, W1)
  b = Conv (x, W2)
  s = Sigmoid (b)
  y = Concat <axis=1> (a, s)
}
"""


def test_concat_of_a_fixed_scale_and_another_tensor_requantizes():
    """A YOLO-style head: boxes and sigmoid scores in one Concat. Sharing the sigmoid's [0, 1) scale
    would clip the boxes; the Concat takes a scale of its own instead."""
    model, reference, feeds = quantize(with_weights(CONCAT_FIXED, W1=(4, 3, 1, 1), W2=(4, 3, 1, 1)))
    params = quantized_outputs(model)
    assert params["s"] == (1 / 256, -128)
    assert params["y_float"] != params["s"] and params["y_float"] == params["a"]
    assert sqnr_db(run(reference, feeds)[0], run(model, feeds)[0]) > 30


def test_concat_of_two_sigmoids_keeps_their_fixed_scale():
    text = CONCAT_FIXED.replace("y = Concat <axis=1> (a, s)", "t = Sigmoid (a)\n  y = Concat <axis=1> (t, s)")
    model, _, _ = quantize(with_weights(text, W1=(4, 3, 1, 1), W2=(4, 3, 1, 1)))
    params = quantized_outputs(model)
    assert params["s"] == params["t"] == params["y_float"] == (1 / 256, -128)


SCALAR_CONSTANTS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4,4,4] x, float[4,4,1,1] W) => (float[N,4,4,4] y) <float three = {3.0}, float sixth = {0.16666667}> {
  c = Conv (x, W)
  lo = Constant <value = float {0.0}> ()
  hi = Constant <value = float {6.0}> ()
  a = Add (c, three)
  r = Clip (a, lo, hi)
  d = Mul (r, sixth)
  y = Mul (c, d)
}
"""


def test_keras_hardswish_scalar_add_and_mul_are_int8_with_exact_constants():
    model, reference, feeds = quantize(with_weights(SCALAR_CONSTANTS, W=(4, 4, 1, 1)))
    assert compute_ops(model) == ["Conv", "Add", "Clip", "Mul", "Mul"]
    # The Add+Clip unit: no QDQ between them; the constants are int8 with one scale each, exact.
    assert set(quantized_outputs(model)) == {"x", "c", "r", "d", "y_float"}
    for node in model.graph:
        if node.op_type == "Add" or (node.op_type == "Mul" and node.outputs[0].name == "d"):
            dq = node.inputs[1].producer()
            q, scale = dq.inputs[0].const_value.numpy(), dq.inputs[1].const_value.numpy()
            assert q.dtype == np.int8 and abs(int(q)) == 127
            np.testing.assert_allclose(q * scale, 3.0 if node.op_type == "Add" else 0.16666667, rtol=1e-6)
    assert sqnr_db(run(reference, feeds)[0], run(model, feeds)[0]) > 30


def test_excluded_unit_keeps_its_activation_float():
    model = cnn_blocks.residual()
    add = next(n for n in model.graph if n.op_type == "Add")
    add.name = "block_add"
    model, _, _ = quantize(model, exclude={"block_add"})
    add = next(n for n in model.graph if n.op_type == "Add")
    assert [use.node.op_type for use in add.outputs[0].uses()] == ["Relu"]  # float Add, float Relu
    params = quantized_outputs(model)
    assert "s" not in params and "r" in params  # r still feeds an int8 Conv


SHAPE_ARITHMETIC = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4,4,4] x, float[4,4,1,1] W) => (float[N,4,8,8] y) <float two = {2.0}, int64[2] spatial = {2, 3}> {
  c = Conv (x, W)
  shape = Shape (c)
  hw = Gather (shape, spatial)
  f = Cast <to=1> (hw)
  g = Mul (f, two)
  h = Add (g, f)
  i = Sub (h, f)
  sizes_hw = Cast <to=7> (i)
  nc = Slice (shape, zero, two_i)
  sizes = Concat <axis=0> (nc, sizes_hw)
  y = Resize <mode="nearest"> (c, , , sizes)
}
"""


def test_float_shape_arithmetic_is_not_quantized():
    """A Resize size computed in float from a Shape (exporters' dynamic interpolate): no QDQ on it."""
    text = SHAPE_ARITHMETIC.replace("<float two = {2.0}, int64[2] spatial = {2, 3}>",
                                    "<float two = {2.0}, int64[2] spatial = {2, 3}, int64[1] zero = {0}, "
                                    "int64[1] two_i = {2}>")
    plan = plan_quantization(inferred(with_weights(text, W=(4, 4, 1, 1))).graph)
    assert sorted(t.name for t in plan.tensors) == ["c", "x", "y"]

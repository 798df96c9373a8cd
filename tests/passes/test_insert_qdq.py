"""InsertQDQ: QDQ placement on small graphs (op lists asserted), shared scales, int32 bias, exclusions."""

import json

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qconvert.passes.insert_qdq import InsertQDQ
from qconvert.quant.calibrate import calibrate
from qconvert.quant.config import QuantConfig
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import ops, run
from tests.quant.graphs import conv_relu_pool, with_weights

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def quantize(model, config=QuantConfig(), exclude=frozenset(), samples=32):
    rng = np.random.default_rng(1)
    feeds = {v.name: rng.standard_normal([samples, *v.shape[1:]]).astype(np.float32) for v in model.graph.inputs}
    reference = ir.serde.serialize_model(model)
    result = InsertQDQ(ranges=calibrate(model, feeds, config), config=config, exclude=exclude)(model)
    onnx.checker.check_model(ir.serde.serialize_model(result.model))
    return result, reference, feeds


def node(model, op, index=0):
    return [n for n in model.graph if n.op_type == op][index]


def initializer(model, value):
    return value.const_value.numpy()


def test_conv_relu_maxpool_placement_and_numbers():
    result, reference, feeds = quantize(conv_relu_pool())
    model = result.model
    assert result.modified
    assert ops(model) == [Q, DQ, DQ, DQ, "Conv", "Relu", Q, DQ, "MaxPool", Q, DQ]
    # Conv + Relu is one unit: the Relu reads the Conv directly.
    assert node(model, "Relu").inputs[0].producer().op_type == "Conv"
    # MaxPool's output reuses its input's scale and zero point (the same initializers).
    pool_q = node(model, Q, 2)
    assert pool_q.inputs[1] is node(model, Q, 1).inputs[1] and pool_q.inputs[2] is node(model, Q, 1).inputs[2]
    assert [v.name for v in model.graph.outputs] == ["y"] and [v.name for v in model.graph.inputs] == ["x"]
    got, want = run(model, feeds)[0], run(reference, feeds)[0]
    assert sqnr_db(want, got) > 30


def test_weights_per_channel_int8_and_bias_int32():
    model = conv_relu_pool()
    w = model.graph.initializers["W"].const_value.numpy()
    b = model.graph.initializers["B"].const_value.numpy()
    result, _, _ = quantize(model)
    model = result.model
    conv = node(model, "Conv")
    x_scale = initializer(model, node(model, Q, 0).inputs[1])
    w_dq, b_dq = conv.inputs[1].producer(), conv.inputs[2].producer()
    wq, w_scale = initializer(model, w_dq.inputs[0]), initializer(model, w_dq.inputs[1])
    assert wq.dtype == np.int8 and w_dq.attributes.get_int("axis") == 0 and w_scale.shape == (4,)
    np.testing.assert_allclose(w_scale, np.abs(w).reshape(4, -1).max(1) / 127, rtol=1e-6)
    assert np.abs(wq).max() == 127
    bq = initializer(model, b_dq.inputs[0])
    assert bq.dtype == np.int32
    np.testing.assert_array_equal(bq, np.round(b / (x_scale * w_scale)).astype(np.int32))
    assert "W" not in model.graph.initializers  # the float weight is gone, not carried along


def test_per_tensor_weights_have_one_scale():
    result, _, _ = quantize(conv_relu_pool(), QuantConfig(per_channel=False))
    w_dq = node(result.model, "Conv").inputs[1].producer()
    assert w_dq.inputs[1].const_value.numpy().shape == ()


def test_uint8_symmetric_activations():
    result, _, _ = quantize(conv_relu_pool(), QuantConfig(symmetric_activations=True, activation_dtype="uint8"))
    zero_point = node(result.model, Q, 0).inputs[2].const_value.numpy()
    assert zero_point.dtype == np.uint8 and int(zero_point) == 128


CONCAT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,8,8] x, float[4,3,1,1] W1, float[4,3,1,1] W2) => (float[N,8,8,8] y) {
  a = Conv (x, W1)
  b = Conv (x, W2)
  bs = Mul (b, ten)
  y = Concat <axis=1> (a, bs)
}
"""


def test_concat_inputs_and_output_share_one_scale():
    model = with_weights(CONCAT, W1=(4, 3, 1, 1), W2=(4, 3, 1, 1))
    ten = ir.Value(name="ten", const_value=ir.tensor(np.array(10.0, np.float32), name="ten"))
    model.graph.register_initializer(ten)
    mul = node(model, "Mul")
    mul.replace_input_with(1, ten)
    result, reference, feeds = quantize(model)
    model = result.model
    quantizers = [n for n in model.graph if n.op_type == Q]
    scales = {n.inputs[0].name: n.inputs[1] for n in quantizers}
    # a, bs (Concat inputs) and y (its output) use one scale; b (a Conv output feeding Mul) its own.
    assert scales["a"] is scales["bs"] is scales["y_float"]
    assert scales["b"] is not scales["a"]
    # The shared range is the union: wide enough for the ×10 branch.
    got, want = run(model, feeds)[0], run(reference, feeds)[0]
    assert sqnr_db(want, got) > 25


GEMM = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,16] x, float[8,16] W, float[8] B, float[8,4] M) => (float[N,4] y) {
  h = Gemm <transB=1> (x, W, B)
  r = Relu (h)
  y = MatMul (r, M)
}
"""


def test_gemm_relu_matmul():
    result, reference, feeds = quantize(with_weights(GEMM, W=(8, 16), B=(8,), M=(8, 4)))
    model = result.model
    assert ops(model) == [Q, DQ, DQ, DQ, "Gemm", "Relu", Q, DQ, DQ, "MatMul", Q, DQ]
    assert node(model, "Gemm").inputs[1].producer().attributes.get_int("axis") == 0  # transB: [out, in]
    assert node(model, "MatMul").inputs[1].producer().attributes.get_int("axis") == 1  # [in, out]
    got, want = run(model, feeds)[0], run(reference, feeds)[0]
    assert sqnr_db(want, got) > 30


def test_excluded_layer_stays_float_and_is_recorded():
    model = with_weights(GEMM, W=(8, 16), B=(8,), M=(8, 4))
    gemm = node(model, "Gemm")
    gemm.name = "fc1"
    result, _, _ = quantize(model, exclude={"fc1"})
    model = result.model
    assert node(model, "Gemm").inputs[1].name == "W"  # float weight
    # Its input is consumed by no int8 layer, so it gets no QDQ; its output feeds the int8 MatMul.
    assert ops(model) == ["Gemm", "Relu", Q, DQ, DQ, "MatMul", Q, DQ]
    assert json.loads(model.metadata_props["qconvert.quantization"])["float_layers"] == ["fc1"]


FLOAT_ONLY = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,10] x) => (float[N,10] y) {
  s = Sigmoid (x)
  y = Softmax <axis=1> (s)
}
"""


def test_does_not_fire_without_quantizable_layers():
    result, _, _ = quantize(with_weights(FLOAT_ONLY))
    assert not result.modified and ops(result.model) == ["Sigmoid", "Softmax"]


def test_old_opset_is_refused():
    model = with_weights(FLOAT_ONLY.replace('"" : 17', '"" : 11'))
    with pytest.raises(ValueError, match="opset 13"):
        InsertQDQ(ranges={}, config=QuantConfig())(model)


def test_strip_debug_metadata_keeps_other_entries():
    from qconvert.passes.strip_debug_metadata import StripDebugMetadata

    model = conv_relu_pool()
    conv = node(model, "Conv")
    conv.metadata_props.update({"pkg.torch.onnx.stack_trace": "File x.py", "namespace": "m", "mine": "1"})
    assert StripDebugMetadata()(model).modified
    assert dict(conv.metadata_props) == {"mine": "1"}
    assert not StripDebugMetadata()(model).modified


CLIP_RESHAPE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,4,4] x, float[4,3,1,1] W) => (float[N,64,4] y) {
  c = Conv (x, W)
  lo = Constant <value = float {0.0}> ()
  hi = Constant <value = float {6.0}> ()
  r = Clip (c, lo, hi)
  u = Resize <mode="nearest"> (r, , scales)
  s = Reshape (u, shape)
  y = Transpose <perm=[0,2,1]> (s)
}
"""


def test_conv_clip_unit_and_resize_reshape_transpose_share_its_scale():
    model = with_weights(CLIP_RESHAPE, W=(4, 3, 1, 1))
    for name, array in (("scales", np.array([1, 1, 2, 2], np.float32)), ("shape", np.array([0, 4, 64], np.int64))):
        value = ir.Value(name=name, const_value=ir.tensor(array, name=name))
        model.graph.register_initializer(value)
    for node_ in model.graph:
        if node_.op_type == "Resize":
            node_.replace_input_with(2, model.graph.initializers["scales"])
        if node_.op_type == "Reshape":
            node_.replace_input_with(1, model.graph.initializers["shape"])
    result, reference, feeds = quantize(model)
    model = result.model
    assert [op for op in ops(model) if op != "Constant"] == [
        Q, DQ, DQ, "Conv", "Clip", Q, DQ, "Resize", Q, DQ, "Reshape", Q, DQ, "Transpose", Q, DQ]
    scales = {n.inputs[1] for n in model.graph if n.op_type == Q and n.inputs[0].name != "x"}
    assert len(scales) == 1  # Clip output, Resize, Reshape and Transpose outputs: one scale
    got, want = run(model, feeds)[0], run(reference, feeds)[0]
    assert sqnr_db(want, got) > 30


TWO_OUTPUTS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,4,4] x, float[4,3,1,1] W1, float[4,4,1,1] W2, float[4] B2) => (float[N,4,4,4] a, float[N,4,4,4] b) {
  a = Conv (x, W1)
  b = Conv (a, W2, B2)
}
"""


def test_graph_output_feeding_a_layer_keeps_its_name_and_int32_bias():
    result, reference, feeds = quantize(with_weights(TWO_OUTPUTS, W1=(4, 3, 1, 1), W2=(4, 4, 1, 1), B2=(4,)))
    model = result.model
    assert [v.name for v in model.graph.outputs] == ["a", "b"]
    assert node(model, "Conv", 1).inputs[0].name == "a"  # the dequantized output, under its own name
    assert node(model, "Conv", 1).inputs[2].producer().inputs[0].const_value.numpy().dtype == np.int32
    for got, want in zip(run(model, feeds), run(reference, feeds)):
        assert sqnr_db(want, got) > 30

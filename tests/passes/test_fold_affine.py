"""FoldChannelAffine and ChannelAffineToConv: exported BatchNormalization as Mul/Add, Keras Rescaling and
Normalization at the input. Op lists before/after and the largest difference through onnxruntime."""

import numpy as np
import onnx
import onnx_ir as ir

from qconvert.passes.channel_affine_to_conv import ChannelAffineToConv
from qconvert.passes.fold_affine import FoldChannelAffine
from tests.passes.helpers import check_pass_keeps_io, ops, parse

CHANNEL_CONSTANTS = {"s": (1, 8, 1, 1), "b": (1, 8, 1, 1)}


def build(text: str, seed: int = 0, **shapes) -> ir.Model:
    """Parse `text`, make the named inputs random initializers, infer shapes (as after cleanup)."""
    model = parse(text)
    rng = np.random.default_rng(seed)
    for name, shape in shapes.items():
        value = next(v for v in model.graph.inputs if v.name == name)
        model.graph.inputs.remove(value)
        value.const_value = ir.tensor(rng.uniform(0.5, 1.5, shape).astype(np.float32) * rng.choice([-1, 1], shape)
                                      .astype(np.float32), name=name)
        model.graph.register_initializer(value)
    return ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(ir.serde.serialize_model(model)))


AFTER_CONV = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,6,6] x, float[8,1,3,3] W, float[1,8,1,1] s, float[1,8,1,1] b) => (float[N,8,6,6] y) {
  d = Conv <group=8, pads=[1,1,1,1]> (x, W)
  m = Mul (d, s)
  a = Add (m, b)
  lo = Constant <value = float {0.0}> ()
  hi = Constant <value = float {6.0}> ()
  y = Clip (a, lo, hi)
}
"""


def test_batchnorm_as_mul_add_after_a_depthwise_conv_folds_into_it():
    model = build(AFTER_CONV, W=(8, 1, 3, 3), **CHANNEL_CONSTANTS)
    assert check_pass_keeps_io(model, FoldChannelAffine(), atol=2e-6).modified
    assert ops(model) == ["Conv", "Constant", "Constant", "Clip"]
    assert model.graph.node(0).inputs[2] is not None  # the offset went into a new bias


AFTER_RELU = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,6,6] x, float[4,8,1,1] W0, float[8,4,3,3] W, float[8] B, float[1,8,1,1] s, float[1,8,1,1] b)
  => (float[N,8,4,4] y, float[N,4,6,6] c) {
  c = Conv (x, W0)
  r = Relu (x)
  m = Mul (r, s)
  a = Add (m, b)
  y = Conv <group=2> (a, W, B)
}
"""


def test_batchnorm_after_an_activation_folds_forward_into_an_unpadded_grouped_conv():
    model = build(AFTER_RELU, W0=(4, 8, 1, 1), W=(8, 4, 3, 3), B=(8,), **CHANNEL_CONSTANTS)
    assert check_pass_keeps_io(model, FoldChannelAffine(), atol=1e-5).modified
    assert ops(model) == ["Conv", "Relu", "Conv"]


PADDED = AFTER_RELU.replace("Conv <group=2> (a, W, B)", "Conv <group=2, pads=[1,1,1,1]> (a, W, B)").replace(
    "float[N,8,4,4] y", "float[N,8,6,6] y")


def test_an_offset_does_not_fold_into_a_padded_conv_and_becomes_one_depthwise_conv():
    """The padded border would see b instead of 0: the offset stays, the scale before it too."""
    model = build(PADDED, W0=(4, 8, 1, 1), W=(8, 4, 3, 3), B=(8,), **CHANNEL_CONSTANTS)
    assert not check_pass_keeps_io(model, FoldChannelAffine()).modified
    assert ops(model) == ["Conv", "Relu", "Mul", "Add", "Conv"]
    assert check_pass_keeps_io(model, ChannelAffineToConv(), atol=1e-5).modified
    assert ops(model) == ["Conv", "Relu", "Conv", "Conv"]
    depthwise = model.graph.node(2)
    assert depthwise.attributes.get_int("group") == 8 and depthwise.inputs[1].shape.dims == (8, 1, 1, 1)


KERAS_INPUT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,6,6,3] image, float[8,3,3,3] W, float[1,1,1,3] mean, float[1,1,1,3] inv_std) => (float[N,8,4,4] y)
  <float rescale = {0.007843138}, float offset = {-1.0}> {
  r = Mul (image, rescale)
  o = Add (r, offset)
  n0 = Sub (o, mean)
  n = Mul (n0, inv_std)
  t = Transpose <perm=[0,3,1,2]> (n)
  y = Conv (t, W)
}
"""


def test_keras_rescaling_and_normalization_on_the_nhwc_input_fold_into_the_first_conv():
    model = build(KERAS_INPUT, W=(8, 3, 3, 3), mean=(1, 1, 1, 3), inv_std=(1, 1, 1, 3))
    assert check_pass_keeps_io(model, FoldChannelAffine(), atol=1e-4).modified
    assert ops(model) == ["Transpose", "Conv"]


def test_with_a_padded_first_conv_the_offsets_become_one_depthwise_conv():
    model = build(KERAS_INPUT.replace("Conv (t, W)", "Conv <pads=[1,1,1,1]> (t, W)").replace(
        "float[N,8,4,4] y", "float[N,8,6,6] y"), W=(8, 3, 3, 3), mean=(1, 1, 1, 3), inv_std=(1, 1, 1, 3))
    assert check_pass_keeps_io(model, FoldChannelAffine(), atol=1e-4).modified
    # The last scale folds (zero padding stays zero); the offsets before it cannot.
    assert ops(model) == ["Transpose", "Mul", "Add", "Sub", "Conv"]
    assert check_pass_keeps_io(model, ChannelAffineToConv(), atol=1e-4).modified
    assert ops(model) == ["Transpose", "Conv", "Conv"]


BATCHNORM_AFTER_ADD = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,4,4] x, float[8,8,1,1] W, float[8] gamma, float[8] beta, float[8] mean, float[8] var)
  => (float[N,8,4,4] y) {
  c = Conv (x, W)
  a = Add (c, x)
  n = BatchNormalization (a, gamma, beta, mean, var)
  y = Relu (n)
}
"""


def test_batchnorm_node_after_an_add_becomes_one_depthwise_conv():
    """Pre-activation ResNets (ResNet50V2): BatchNormalization after the residual Add."""
    unknown_var = build(BATCHNORM_AFTER_ADD, W=(8, 8, 1, 1), gamma=(8,), beta=(8,), mean=(8,))
    assert not FoldChannelAffine()(unknown_var).modified  # var is a graph input: known only at run time
    model = build(BATCHNORM_AFTER_ADD, W=(8, 8, 1, 1), gamma=(8,), beta=(8,), mean=(8,), var=(8,))
    var = model.graph.initializers["var"]
    var.const_value = ir.tensor(np.abs(var.const_value.numpy()), name="var")  # variances are positive
    assert check_pass_keeps_io(model, FoldChannelAffine(), atol=1e-5).modified
    assert ops(model) == ["Conv", "Add", "Mul", "Add", "Relu"]
    assert check_pass_keeps_io(model, ChannelAffineToConv(), atol=1e-5).modified
    assert ops(model) == ["Conv", "Add", "Conv", "Relu"]


SCALAR_ONLY = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,4,4] x, float[8,8,1,1] W) => (float[N,8,4,4] y) <float three = {3.0}> {
  c = Conv (x, W)
  r = Relu (c)
  s = Add (r, c)
  y = Add (s, three)
}
"""


def test_scalar_offsets_stay_elementwise_and_shared_conv_outputs_do_not_fold():
    model = build(SCALAR_ONLY, W=(8, 8, 1, 1))
    assert not FoldChannelAffine()(model).modified  # its input is an Add; no Conv reads it
    assert not ChannelAffineToConv()(model).modified  # one value for every channel
    assert ops(model) == ["Conv", "Relu", "Add", "Add"]

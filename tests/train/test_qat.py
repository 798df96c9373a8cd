"""Quantization-aware training on the QDQ IR: LSQ gradients against a hand-computed case, the program
against the QDQ IR, the untrained round trip, fixed and shared scales kept, int32 biases requantized
from the trained scales, and the trained scales in every int8 artifact."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch

from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.passes import prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from qconvert.train.data import TrainData
from qconvert.train.fake_quant import fixed_scales, lsq_fake_quantize, lsq_grad_scale, qat_program
from qconvert.train.loop import TrainOptions, quantization_aware
from qconvert.train.writeback import write_back_quantized
from tests.passes.helpers import parse
from tests.train.test_program import assert_bit_identical

# Conv+Relu, a MaxPool sharing its scale, a Sigmoid (fixed output scale 1/256) gating it.
GATED = """<ir_version: 8, opset_import: ["" : 17]>
gated (float[N, 1, 8, 8] x) => (float[N, 2, 4, 4] y)
<float[2, 1, 3, 3] w = {0.3, -0.2, 0.1, 0.5, 0.4, -0.3, 0.2, 0.1, -0.1,
                         -0.4, 0.2, 0.3, 0.1, -0.5, 0.2, 0.3, -0.2, 0.4},
 float[2] b = {0.1, -0.2}>
{ c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  r = Relu(c)
  p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
  g = Sigmoid(p)
  y = Mul(p, g) }"""


def _gated(per_channel: bool = True):
    model = prepare_for_int8(parse(GATED))
    feeds = random_feeds(specs_from_ir(model), 64, 1)
    return model, quantize_static(model, feeds, QuantConfig(per_channel=per_channel)), feeds


def _scale_readers(model) -> dict[str, list[str]]:
    """scale initializer -> the QuantizeLinear inputs that read it"""
    readers: dict[str, list[str]] = {}
    for node in model.graph:
        if node.op_type == "QuantizeLinear":
            readers.setdefault(node.inputs[1].name, []).append(node.inputs[0].name)
    return readers


def test_lsq_gradients_match_the_hand_computed_case():
    # s = 0.5, z = 0, codes [-2, 2]: x/s = -1.8, 0.52, 1.48 inside the range, 6 above, -6 below.
    x = torch.tensor([-0.9, 0.26, 0.74, 3.0, -3.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    y = lsq_fake_quantize(x, s, torch.tensor(0), 0, -2, 2, grad_scale=0.25)
    np.testing.assert_allclose(y.detach().numpy(), [-1.0, 0.5, 0.5, 1.0, -1.0])
    y.sum().backward()
    # dy/ds: round(v) - v inside (-0.2, 0.48, -0.48), high - z above (2), low - z below (-2); times g.
    assert s.grad.item() == pytest.approx(0.25 * (-0.2 + 0.48 - 0.48 + 2.0 - 2.0), abs=1e-6)
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 1, 0, 0])  # straight through inside, 0 outside


def test_lsq_gradients_per_channel_with_a_zero_point():
    # Channel 0: s = 0.1, z = 2, codes [0, 5]: x/s = -0.4 -> 2 + 0 = 2 inside; 0.47 -> 2 + 5 = 7 above.
    # Channel 1: s = 1.0, z = 2: x/s = -3 -> -1 below; 1.3 -> 3 inside.
    x = torch.tensor([[-0.04, 0.47], [-3.0, 1.3]], requires_grad=True)
    s = torch.tensor([0.1, 1.0], requires_grad=True)
    y = lsq_fake_quantize(x, s, torch.tensor([2, 2]), 0, 0, 5, grad_scale=1.0)
    np.testing.assert_allclose(y.detach().numpy(), [[0.0, 0.3], [-2.0, 1.0]], atol=1e-6)
    y.sum().backward()
    # ch 0: (round(-0.4) - -0.4) + (5 - 2) = 0.4 + 3; ch 1: (0 - 2) + (1 - 1.3)
    np.testing.assert_allclose(s.grad.numpy(), [3.4, -2.3], atol=1e-5)
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [0, 1]])


def test_lsq_gradient_scale_is_one_over_root_n_qp():
    assert lsq_grad_scale(9, 127) == pytest.approx(1 / np.sqrt(9 * 127))


@pytest.mark.parametrize("per_channel", [True, False])
def test_untrained_program_is_the_qdq_ir_and_writes_it_back_bit_identical(per_channel):
    model, qdq, feeds = _gated(per_channel)
    program = qat_program(qdq, model)
    assert sorted(program.shadows.values()) == ["b_quantized", "w_quantized"]  # activations have none
    assert_bit_identical(write_back_quantized(qdq, program), qdq)
    program.module.train(False)
    with torch.no_grad():
        ours = program({"x": torch.from_numpy(feeds["x"])})[0].numpy()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # QDQ as written
    session = ort.InferenceSession(ir.serde.serialize_model(qdq).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    reference = session.run(None, feeds)[0]
    assert sqnr_db(reference, ours) > 40.0


def test_training_keeps_fixed_and_shared_scales_and_requantizes_the_bias():
    model, qdq, feeds = _gated()
    readers = _scale_readers(qdq)
    [fixed] = fixed_scales(qdq)
    [shared] = [name for name, inputs in readers.items() if sorted(inputs) == ["p", "r"]]
    # inputs past the calibrated ranges: the clipping gives training something to win (the loss falls
    # every epoch, so the last is kept); on the calibration inputs themselves PTQ is already its best
    wider = TrainData({name: array * 3 for name, array in feeds.items()}, None, None)
    trained, history = quantization_aware(qdq, wider, TrainOptions(epochs=3, lr=1e-2, batch=16), teacher=model,
                                          float_model=model)
    assert history.best_epoch == 3
    before, after = qdq.graph.initializers, trained.graph.initializers
    assert after[fixed].const_value.numpy().tobytes() == before[fixed].const_value.numpy().tobytes()
    assert after[fixed].const_value.numpy() == np.float32(1 / 256)
    assert _scale_readers(trained)[shared] == readers[shared]  # one initializer for MaxPool and its input
    assert after[shared].const_value.numpy() != before[shared].const_value.numpy()  # it was trained
    # The int32 bias sits at s_x·s_w of the trained scales; the weights stay in the narrow int8 range.
    [conv] = [node for node in trained.graph if node.op_type == "Conv"]
    sx, sw, sb = (node.inputs[1].const_value.numpy() for node in (p.producer() for p in conv.inputs))
    np.testing.assert_array_equal(sb, (sx * sw).astype(np.float32))
    weights = conv.inputs[1].producer().inputs[0].const_value.numpy()
    assert weights.dtype == np.int8 and np.abs(weights).max() <= 127
    assert not np.array_equal(weights, qdq.graph.initializers[weights_name(qdq)].const_value.numpy()) or \
        not np.array_equal(sw, qdq.graph.initializers[conv.inputs[1].producer().inputs[1].name].const_value.numpy())


def weights_name(model) -> str:
    [conv] = [node for node in model.graph if node.op_type == "Conv"]
    return conv.inputs[1].producer().inputs[0].name


def test_qat_lowers_the_trained_scales_into_every_int8_artifact(tmp_path):
    """onnx-qdq holds the IR itself; torch-int8's modules and tflite-int8's tensors carry the IR's scales."""
    from qconvert.backends.targets import EmitOptions, resolve_targets
    from qconvert.backends.tflite import quantized

    model, qdq, feeds = _gated()
    trained, _ = quantization_aware(qdq, TrainData(feeds, None, None), TrainOptions(epochs=2, lr=1e-2, batch=16),
                                    teacher=model, float_model=model)
    _, facts = quantized.convert(trained, "int8", EmitOptions(), "tflite-int8")
    assert facts["quantization"]["weight_scales_match_ir"] and facts["quantization"]["scales_checked"] >= 3
    from qconvert.backends.torch.emit import build_module

    module, _ = build_module(trained, "int8", "torch-int8")
    relu_scale = float(trained.graph.initializers[_shared_scale(trained)].const_value.numpy())
    # The Conv+Relu unit writes the trained shared scale (x86 may add a 1x1 interleave layer before it).
    [unit] = [m for m in module.modules() if type(m).__name__ in ("ConvReLU2d", "Conv2d")
              and m.scale == pytest.approx(relu_scale, rel=1e-6)]
    [conv] = [node for node in trained.graph if node.op_type == "Conv"]
    ir_weight_scales = conv.inputs[1].producer().inputs[1].const_value.numpy()
    np.testing.assert_allclose(unit.weight().q_per_channel_scales().numpy(), ir_weight_scales, rtol=1e-6)
    [onnx_target] = resolve_targets(["onnx-qdq"])
    onnx_target.emit(trained, tmp_path / "m.onnx", EmitOptions())
    import onnx

    stored = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / "m.onnx").graph.initializer}
    name = _shared_scale(trained)
    assert stored[name] == trained.graph.initializers[name].const_value.numpy()


def _shared_scale(model) -> str:
    return next(name for name, inputs in _scale_readers(model).items() if sorted(inputs) == ["p", "r"])


# A hard-swish-like gate: the HardSigmoid's output, in [0, 1], is quantized on its own grid.
HARD_GATED = """<ir_version: 8, opset_import: ["" : 17]>
hard_gated (float[N, 1, 8, 8] x) => (float[N, 2, 8, 8] y)
<float[2, 1, 3, 3] w = {0.3, -0.2, 0.1, 0.5, 0.4, -0.3, 0.2, 0.1, -0.1,
                         -0.4, 0.2, 0.3, 0.1, -0.5, 0.2, 0.3, -0.2, 0.4},
 float[2] b = {0.1, -0.2}>
{ c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  h = HardSigmoid <alpha = 0.5> (c)
  y = Mul(c, h) }"""

BOUNDED = """<ir_version: 8, opset_import: ["" : 17]>
bounded (float[4] x) => (float[4] a, float[4] b, float[4] c, float[4] d)
<float lo6 = {0.0}, float hi6 = {6.0}, float lo1 = {-1.0}, float hi1 = {1.0},
 float s_hs = {0.001}, int8 z_hs = {-128}, float s_r6 = {0.01}, uint8 z_r6 = {0},
 float s_c1 = {0.005}, int8 z_c1 = {0}, float s_shared = {0.01}, uint8 z_shared = {0}>
{ hs = HardSigmoid(x)
  qa = QuantizeLinear(hs, s_hs, z_hs)
  a = DequantizeLinear(qa, s_hs, z_hs)
  r6 = Clip(x, lo6, hi6)
  qb = QuantizeLinear(r6, s_r6, z_r6)
  b = DequantizeLinear(qb, s_r6, z_r6)
  c1 = Clip(x, lo1, hi1)
  qc = QuantizeLinear(c1, s_c1, z_c1)
  c = DequantizeLinear(qc, s_c1, z_c1)
  r = Relu(x)
  qr = QuantizeLinear(r, s_shared, z_shared)
  qs = QuantizeLinear(r6, s_shared, z_shared)
  dr = DequantizeLinear(qr, s_shared, z_shared)
  ds = DequantizeLinear(qs, s_shared, z_shared)
  d = Add(dr, ds) }"""


def test_bounded_outputs_cap_their_scales_where_the_grid_reaches_the_bound():
    from qconvert.train.fake_quant import scale_caps

    caps = scale_caps(parse(BOUNDED))
    assert caps == pytest.approx({"s_hs": 1 / 255, "s_r6": 6 / 255, "s_c1": 1 / 127})  # [-128/127, 1] covers [-1, 1]
    assert "s_shared" not in caps  # a Relu's output shares it: unbounded


def test_a_trained_hard_sigmoid_grid_ends_at_one_and_tflite_lowers_it_to_integers():
    from qconvert.backends.tflite.int8_lowering import lower_for_tflite
    from qconvert.train.fake_quant import scale_caps

    model = prepare_for_int8(parse(HARD_GATED))
    feeds = random_feeds(specs_from_ir(model), 64, 1)
    calib = {name: array * 0.2 for name, array in feeds.items()}  # the gate stays below 1 in calibration
    qdq = quantize_static(model, calib, QuantConfig())
    [gate] = [n for n in qdq.graph if n.op_type == "QuantizeLinear" and n.inputs[0].producer() is not None
              and n.inputs[0].producer().op_type == "HardSigmoid"]
    name, zero = gate.inputs[1].name, int(gate.inputs[2].const_value.numpy())
    assert scale_caps(qdq) == pytest.approx({name: 1 / (127 - zero)})
    assert qdq.graph.initializers[name].const_value.numpy() * (127 - zero) < 0.9
    train = {n: a * 4 for n, a in feeds.items()}  # saturates it: its scale trains up, and stops at 1 / 255
    trained, _ = quantization_aware(qdq, TrainData(train, None, None), TrainOptions(epochs=4, lr=5e-2, batch=16),
                                    teacher=model, float_model=model)
    top = float(trained.graph.initializers[name].const_value.numpy()) * (127 - zero)
    assert 0.99 < top <= 1 + 1e-6
    assert "HardSigmoid" not in {n.op_type for n in lower_for_tflite(trained).graph}


def test_without_eval_qat_never_returns_an_ir_its_loss_scores_worse_than_ptq():
    """A learning rate that wrecks the QDQ IR: the PTQ IR (epoch 0) has the lowest distillation loss and comes
    back bit-identical; the loss is measured after each epoch, as epoch 0's is."""
    model, qdq, feeds = _gated()
    trained, history = quantization_aware(qdq, TrainData(feeds, None, None), TrainOptions(epochs=2, lr=1.0, batch=16),
                                          teacher=model, float_model=model)
    assert history.best_epoch == 0 and history.epochs[1].loss > history.epochs[0].loss
    assert_bit_identical(qdq, trained)

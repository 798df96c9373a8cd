"""QAT's BatchNorm for folded Conv-rectifier layers (qconvert/train/batchnorm.py): which convs get one, the
statistics pass starts it as the identity, batch statistics normalise in training, and the fold writes
back exactly what the trained program computes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch

from qconvert.ir import fold_factors
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.passes import prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from qconvert.train.batchnorm import ConvBatchNorm, estimate_statistics, fold, layers
from qconvert.train.data import TrainData
from qconvert.train.fake_quant import qat_program
from qconvert.train.loop import TrainOptions, train
from qconvert.train.writeback import write_back_quantized
from tests.train.conftest import segmenter
from tests.train.test_program import assert_bit_identical
from tests.train.test_qat import _gated


def _run(program, feeds, training: bool = False) -> np.ndarray:
    program.module.train(training)
    with torch.no_grad():
        return program({"x": torch.from_numpy(feeds["x"])})[0].numpy()


def _ort(model, feeds) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _gated_batchnorm(per_channel: bool):
    """The gated model, its conv recorded as one a BatchNorm was folded into (γ 1, factor 1: k starts at 1)."""
    model, qdq, feeds = _gated(per_channel)
    [conv] = [node for node in model.graph if node.op_type == "Conv"]
    fold_factors.record(model.graph, conv.inputs[1].name, np.ones((2, 1, 1, 1)), np.ones(2))
    return model, qdq, feeds


@pytest.mark.parametrize("per_channel", [True, False])
def test_only_a_conv_feeding_a_rectifier_gets_a_batchnorm(per_channel):
    model, qdq, _ = _gated(per_channel)
    assert layers(qat_program(qdq, model, batch_statistics=True).module) == []  # no BatchNorm was folded there
    model, qdq, _ = _gated_batchnorm(per_channel)
    assert len(layers(qat_program(qdq, model, batch_statistics=True).module)) == 1  # Conv -> Relu
    assert layers(qat_program(qdq, model).module) == []  # off unless asked for
    model = prepare_for_int8(segmenter())  # Conv -> Sigmoid output
    [conv] = [node for node in model.graph if node.op_type == "Conv"]
    fold_factors.record(model.graph, conv.inputs[1].name, np.ones((conv.inputs[1].shape[0], 1, 1, 1)))
    sigmoid = quantize_static(model, random_feeds(specs_from_ir(model), 16, 0), QuantConfig())
    assert layers(qat_program(sigmoid, model, batch_statistics=True).module) == []


@pytest.mark.parametrize("per_channel", [True, False])
def test_statistics_start_as_the_identity_and_normalise_batches(per_channel):
    model, qdq, feeds = _gated_batchnorm(per_channel)
    program = qat_program(qdq, model, batch_statistics=True)
    before = _run(program, feeds)
    estimate_statistics(program, feeds, 16)
    [layer] = layers(program.module)
    assert float(layer.running_var.min()) > 0 and float(layer.running_mean.abs().max()) > 0  # measured
    assert torch.equal(layer.factor(), torch.ones_like(layer.factor()))  # k exactly 1
    np.testing.assert_array_equal(_run(program, feeds), before)  # eval: the QDQ IR unchanged
    fold(program)
    assert_bit_identical(write_back_quantized(qdq, program), qdq)
    # In training the batch's own statistics normalise: on the batch the statistics came from, they are
    # the running ones, so the training output is the inference output.
    assert sqnr_db(before, _run(program, feeds, training=True)) > 35.0
    # On a batch of its own (shifted inputs), normalisation makes it differ from inference.
    shifted = {"x": feeds["x"] + np.float32(0.5)}
    assert sqnr_db(_run(program, shifted), _run(program, shifted, training=True)) < 25.0


@pytest.mark.parametrize("per_channel", [True, False])
def test_trained_batchnorm_folds_into_what_the_program_computed(per_channel):
    model, qdq, feeds = _gated_batchnorm(per_channel)
    program = qat_program(qdq, model, batch_statistics=True)
    estimate_statistics(program, feeds, 16)
    train(program, qdq, TrainData(feeds, None, None), TrainOptions(epochs=3, lr=1e-2, batch=16), teacher=model)
    [layer] = layers(program.module)
    assert not torch.equal(layer.factor(), torch.ones_like(layer.factor()))  # γ and the statistics moved
    trained = _run(program, feeds)
    before = {name: p.detach().clone() for name, p in program.module.named_parameters()}
    k = layer.factor().detach().clone()
    factors = fold(program)
    assert torch.equal(layer.factor(), torch.ones_like(layer.factor()))
    # fold says what it multiplied the weight by (pruning divides it out again: qconvert/ir/fold_factors.py)
    [(weight, factor)] = factors.items()
    np.testing.assert_array_equal(factor.reshape(-1), k.double().numpy())
    torch.testing.assert_close(program.module.get_parameter(weight), before[weight] * k.reshape(-1, 1, 1, 1))
    np.testing.assert_allclose(_run(program, feeds), trained, rtol=1e-4, atol=1e-5)
    written = write_back_quantized(qdq, program)
    assert sqnr_db(_ort(written, feeds), trained) > 40.0
    assert isinstance(layer, ConvBatchNorm)


def test_training_normalises_by_the_batch_and_keeps_the_statistics_of_the_unfolded_output():
    """BN_batch on conv(x, W·k) / k (what _compute hands _normalise), ε on its own variance, and the running
    statistics of conv / k + b updated with torch's momentum (unbiased variance), by hand."""
    from qconvert.train.batchnorm import EPS, MOMENTUM

    layer = ConvBatchNorm(2, {})
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.5, -1.0]))
        layer.running_var.copy_(torch.tensor([2.0, 0.25]))
        layer.gamma.copy_(torch.tensor([3.0, 0.5]))
        layer.beta.copy_(torch.tensor([0.1, -0.2]))
    unfolded = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.05 + 1
    bias = torch.tensor([0.3, -0.4])
    old_mean, old_var = layer.running_mean.clone(), layer.running_var.clone()
    y = layer._normalise(unfolded, bias)
    c = unfolded.transpose(0, 1).reshape(2, -1)
    mean, var = c.mean(1), c.var(1, unbiased=False)
    expected = (unfolded - mean.reshape(1, 2, 1, 1)) / torch.sqrt(var.reshape(1, 2, 1, 1) + EPS) * \
        layer.gamma.detach().reshape(1, 2, 1, 1) + layer.beta.detach().reshape(1, 2, 1, 1)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    with_bias = c + bias.reshape(2, 1)
    torch.testing.assert_close(layer.running_mean, (1 - MOMENTUM) * old_mean + MOMENTUM * with_bias.mean(1))
    torch.testing.assert_close(layer.running_var, (1 - MOMENTUM) * old_var + MOMENTUM * with_bias.var(1))

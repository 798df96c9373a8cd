"""Float fine-tuning under BatchNorm batch statistics (qconvert/train/batchnorm.py's ConvBatchNorm in the
float training program): which convs get one, an untrained program writes the IR back bit for bit,
inference uses the running statistics, pruned weights stay zero through the refold, and a pruned tiny VGG
recovers its top-1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qconvert.pipeline.options import PruneOptions
from qconvert.prune.iterate import prune_to
from qconvert.prune.method import parse_method
from qconvert.quant.evaluate import run_first_output
from qconvert.report.accuracy import evaluate
from qconvert.report.metrics import sqnr_db
from qconvert.train.batchnorm import EPS, ConvBatchNorm, estimate_statistics, fold, layers
from qconvert.train.loop import TrainOptions, finetune, predict, train
from qconvert.train.program import trainable_program
from qconvert.train.writeback import write_back
from tests.train.conftest import segmenter
from tests.train.test_loop import ONE_THREAD, vgg_data
from tests.train.test_program import assert_bit_identical

CPU = torch.device("cpu")


def test_each_conv_feeding_a_rectifier_gets_a_batchnorm(tiny_vgg):
    convs = [node for node in tiny_vgg.graph if node.op_type == "Conv"]
    assert len(layers(trainable_program(tiny_vgg, batch_statistics=True).module)) == len(convs) == 13
    assert layers(trainable_program(tiny_vgg).module) == []  # off unless asked for
    assert len(layers(trainable_program(segmenter("Relu"), batch_statistics=True).module)) == 1
    assert layers(trainable_program(segmenter("Sigmoid"), batch_statistics=True).module) == []


def test_an_untrained_program_writes_the_ir_back_bit_for_bit(tiny_vgg, digits):
    """The weight and bias are divided by c, a power of two near the source BatchNorm's fold factor, and
    γ = c·√(var + ε), β = c·mean: k = γ / √(var + ε) is exactly c and β - mean·k exactly 0, so inference
    and the fold compute the IR's own weights and biases, not a rounding of them."""
    program = trainable_program(tiny_vgg, batch_statistics=True)
    feeds = {"x": digits[0][:64]}
    before = predict(program, feeds, 32, CPU)
    estimate_statistics(program, feeds, 32)
    unfolded = set()
    for layer in layers(program.module):
        assert float(layer.running_var.min()) > 0 and float(layer.running_mean.abs().max()) > 0  # measured
        assert torch.equal(layer.factor(), layer.unfolded)
        assert torch.equal(torch.exp2(torch.round(torch.log2(layer.unfolded))), layer.unfolded)
        unfolded |= set(layer.unfolded.tolist())
    assert len(unfolded) > 3  # the tiny VGG's folds are recorded: its layers train in their source's units
    np.testing.assert_array_equal(predict(program, feeds, 32, CPU), before)
    fold(program)
    assert_bit_identical(write_back(tiny_vgg, program), tiny_vgg)


def test_inference_uses_the_running_statistics_and_training_the_batch_statistics():
    layer = ConvBatchNorm(2, {"n": 2, "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1,
                              "explicit": None})
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.5, -1.0]))
        layer.running_var.copy_(torch.tensor([2.0, 0.25]))
        layer.gamma.copy_(torch.tensor([3.0, 0.5]))
        layer.beta.copy_(torch.tensor([0.1, -0.2]))
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(*shape, generator=generator) for shape in ((4, 3, 5, 5), (2, 3, 3, 3), (2,)))
    z = F.conv2d(x, weight, bias, padding=1)
    statistics = (layer.running_mean.clone(), layer.running_var.clone(), layer.gamma.detach(), layer.beta.detach())
    layer.train(False)
    expected = F.batch_norm(z, *statistics, training=False, eps=EPS)
    torch.testing.assert_close(layer(x, weight, bias), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(layer.running_mean, statistics[0])  # inference leaves them
    layer.train(True)
    # BN_batch(conv(x, W·k) / k + b): the bias only moves the batch mean, ε applies to conv(x, W)'s variance
    batch = F.batch_norm(F.conv2d(x, weight, padding=1), None, None, statistics[2], statistics[3],
                         training=True, eps=EPS)
    torch.testing.assert_close(layer(x, weight, bias), batch, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch, expected, atol=0.1)
    assert not torch.equal(layer.running_mean, statistics[0])  # training moves them


def test_the_trained_program_folds_into_what_it_computed(tiny_vgg, digits):
    program = trainable_program(tiny_vgg, batch_statistics=True)
    data = vgg_data(tiny_vgg, digits, 128)
    estimate_statistics(program, data.feeds, 32)
    train(program, tiny_vgg, data, TrainOptions(epochs=1, lr=1e-3, **ONE_THREAD))
    x = {"x": digits[2][:64]}
    trained = predict(program, x, 32, CPU)
    fold(program)
    written = write_back(tiny_vgg, program)
    assert sqnr_db(trained, run_first_output(written, x)) > 60  # float rounding of the fold only
    assert sqnr_db(trained, run_first_output(tiny_vgg, x)) < 30  # the weights did change


def test_a_pruned_program_starts_with_the_unpruned_models_scale_and_shift(tiny_vgg, digits, pruned_vgg):
    """With the unpruned program as the reference, each channel is normalised to the mean and spread it had
    before pruning (as a BatchNorm trained on batch statistics with its source γ and β would): recalibration
    alone recovers most of the top-1 that pruning lost."""
    pruned = pruned_vgg[0]
    program, reference = (trainable_program(m, batch_statistics=True) for m in (pruned, tiny_vgg))
    estimate_statistics(program, {"x": digits[0][:256]}, 32, reference)
    for layer, source in zip(layers(program.module), layers(reference.module)):
        assert torch.equal(layer.gamma, source.gamma) and torch.equal(layer.beta, source.beta)
        assert not torch.equal(layer.running_var, source.running_var)  # the pruned model's own statistics
    x, labels = {"x": digits[2]}, digits[3]
    top1 = [evaluate("top1", output, labels, None)["top1"]
            for output in (run_first_output(pruned, x), predict(program, x, 32, CPU))]
    assert top1[1] > top1[0] + 40, top1


@pytest.fixture(scope="module")
def pruned_vgg(tiny_vgg, digits):
    """The tiny VGG at 60% global sparsity, and its fine-tuning with batch statistics and folded."""
    pruned, _, masks = prune_to(tiny_vgg, PruneOptions(0.6, parse_method("global")))
    data = vgg_data(tiny_vgg, digits)
    options = TrainOptions(epochs=2, lr=1e-4, **ONE_THREAD)
    tuned = {statistics: finetune(pruned, data, options, teacher=tiny_vgg, masks=masks,
                                  batch_statistics=statistics)[0] for statistics in (True, False)}
    return pruned, masks, tuned


def test_pruned_weights_stay_zero_through_batch_statistics_and_the_refold(tiny_vgg, pruned_vgg):
    pruned, masks, tuned = pruned_vgg
    conv_weights = {node.inputs[1].name for node in tiny_vgg.graph if node.op_type == "Conv"}
    assert conv_weights <= set(masks)  # the masks are on the weights that the refold scales
    for name, keep in masks.items():
        weight = tuned[True].graph.initializers[name].const_value.numpy()
        assert not weight[~keep].any(), name
        assert (weight[keep] != pruned.graph.initializers[name].const_value.numpy()[keep]).any(), name


def test_finetuning_under_batch_statistics_recovers_the_pruned_top1(pruned_vgg, digits):
    pruned, _, tuned = pruned_vgg
    x, labels = {"x": digits[2]}, digits[3]
    top1 = {name: evaluate("top1", run_first_output(model, x), labels, None)["top1"]
            for name, model in (("pruned", pruned), ("batch", tuned[True]), ("folded", tuned[False]))}
    assert top1["batch"] > top1["pruned"] + 50, top1
    assert top1["batch"] >= top1["folded"] - 1, top1


def test_unfolding_factors_are_powers_of_two_per_output_channel():
    from qconvert.train.batchnorm import UNFOLD_EXPONENT, unfolding_factor

    np.testing.assert_array_equal(unfolding_factor(None, 3), np.ones(3))
    np.testing.assert_array_equal(unfolding_factor(np.array([9.09, 0.34, 1.0]).reshape(3, 1, 1, 1), 3), [8, 0.25, 1])
    np.testing.assert_array_equal(unfolding_factor(np.array([-3.0, 0.0, np.inf]).reshape(3, 1), 3), [4, 1, 1])
    np.testing.assert_array_equal(unfolding_factor(np.array(2.5), 2), [2, 2])  # one for the whole tensor (nearest in log2)
    np.testing.assert_array_equal(unfolding_factor(np.ones((1, 4, 1, 1)) * 8, 3), np.ones(3))  # input columns
    assert unfolding_factor(np.array([1e30]), 1)[0] == 2.0 ** UNFOLD_EXPONENT


@pytest.mark.parametrize("quantized", [False, True])
def test_unfolded_layers_train_on_the_statistics_they_were_measured_with(tiny_vgg, digits, quantized):
    """On the batch its statistics were measured on, a layer's batch statistics are its running ones, so
    the training output is the inference output: every layer was measured on its inputs as the program
    computes them, and in the units it trains in (the tiny VGG's folds are recorded, so its layers unfold)."""
    from qconvert.passes import prepare_for_int8
    from qconvert.quant.config import QuantConfig
    from qconvert.quant.static import quantize_static
    from qconvert.train.fake_quant import qat_program

    feeds = {"x": digits[0][:64]}
    if quantized:
        prepared = prepare_for_int8(tiny_vgg)
        program = qat_program(quantize_static(prepared, feeds, QuantConfig()), prepared, batch_statistics=True)
    else:
        program = trainable_program(tiny_vgg, batch_statistics=True)
    estimate_statistics(program, feeds, 64)
    assert any(float(layer.unfolded.max()) != 1.0 for layer in layers(program.module))
    inference = predict(program, feeds, 64, CPU)
    program.module.train(True)
    with torch.no_grad():
        training = program({"x": torch.from_numpy(feeds["x"])})[0].numpy()
    assert sqnr_db(inference, training) > (30.0 if quantized else 60.0)

"""LayerInputs, the one pass over the QDQ IR's program that AdaRound-style per-layer optimisations read each
layer's input from: after a layer's integers and scales change (update), every later layer's input is the
one a program rebuilt from the changed IR computes, bit for bit, and a layer's own input is not recomputed
from itself. Batches side by side (a fixed-batch program) give the same inputs as one batch."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
import torch

from qconvert.ir.values import copy_model
from qconvert.train import layerwise
from qconvert.train.layerwise import Capture, LayerInputs, QuantizedLayer, quantized_layers
from qconvert.train.writeback import quantize_array
from tests.train.layer_models import every_layer, quantized, samples


def _halve_weight_scale(layer: QuantizedLayer) -> None:
    """The layer's weight scale halved and its integers requantized (clipped), as the IR would hold them."""
    dequantize = next(n for n, i in layer.codes.uses() if n.op_type == "DequantizeLinear" and i == 0)
    scale_value = dequantize.inputs[1]
    scale = (scale_value.const_value.numpy() / 2).astype(np.float32)
    scale_value.const_value = ir.tensor(scale, name=scale_value.name)
    layer.scale = scale.reshape(layer.scale.shape)
    codes = quantize_array(layer.weight, layer.scale, layer.zero, layer.axis, layer.low, layer.high)
    layer.codes.const_value = ir.tensor(codes.astype(layer.codes.const_value.dtype.numpy()), name=layer.codes.name)


def _weights_first(model: ir.Model) -> ir.Model:
    """The same graph with every DequantizeLinear of an initializer moved to the front (a valid order too):
    the weights are then dequantized before any layer's input is computed, and update must redo it."""
    constant = [n for n in model.graph if n.op_type == "DequantizeLinear" and n.inputs[0].const_value is not None]
    for node in constant:
        model.graph.remove(node)
    model.graph.insert_before(next(iter(model.graph)), constant)
    return model


@pytest.mark.parametrize("batch, weights_first", [(64, False), (5, False), (64, True)])
def test_later_layers_see_the_updated_layers_as_a_rebuilt_program_does(batch, weights_first):
    model, calib = every_layer(), samples(12, seed=1)
    qdq = copy_model(quantized(model, calib, per_channel=True))
    if weights_first:
        qdq = _weights_first(qdq)
    layers = [layer for layer in quantized_layers(qdq, model) if isinstance(layer, QuantizedLayer)]
    assert [layer.name for layer in layers] == ["conv", "depthwise", "transpose", "gemm", "matmul"]
    inputs = LayerInputs(Capture(qdq, torch.device("cpu")), [layer.input for layer in layers], calib, batch)
    differs = []
    for layer in layers:
        streamed = inputs.of(layer.input)
        rebuilt = Capture(qdq, torch.device("cpu")).tensor(layer.input, calib, 64)
        torch.testing.assert_close(streamed, rebuilt, rtol=0, atol=0)
        before = Capture(copy_model(qdq), torch.device("cpu")).tensor(layers[-1].input, calib, 64)
        _halve_weight_scale(layer)
        inputs.update(layer)
        after = Capture(qdq, torch.device("cpu")).tensor(layers[-1].input, calib, 64)
        differs.append(not torch.equal(before, after))
    assert differs[:-1] == [True] * (len(layers) - 1)  # each change reached the last layer's input


def test_a_float_programs_stream_gives_what_a_capture_gives():
    model, calib = every_layer(), samples(12, seed=2)
    qdq = quantized(model, calib, per_channel=True)
    names = [layer.float_input for layer in quantized_layers(qdq, model) if isinstance(layer, QuantizedLayer)]
    assert len(names) == 5 and None not in names
    capture = Capture(model, torch.device("cpu"))
    inputs = LayerInputs(capture, names, calib, 5)
    for name in names:
        streamed = inputs.of(name)
        torch.testing.assert_close(streamed, capture.tensor(name, calib, 64), rtol=0, atol=0)
        assert streamed.is_contiguous()  # a channels-last tensor would pick other kernels in the layer after


def test_stream_samples_keeps_the_widest_tensor_within_the_stream_budget(monkeypatch):
    model, calib = every_layer(), samples(12, seed=2)
    capture = Capture(model, torch.device("cpu"))
    names = [layer.float_input for layer in quantized_layers(quantized(model, calib, per_channel=True), model)]
    widest = max(capture.tensor(name, calib, 1)[0].numel() * 4 for name in names)
    expected = layerwise.STREAM_BYTES // (layerwise.LIVE_TENSORS * widest)
    assert layerwise.stream_samples(capture, names, calib) == expected
    monkeypatch.setattr(layerwise, "STREAM_BYTES", layerwise.LIVE_TENSORS * widest * 3)
    assert layerwise.stream_samples(capture, names, calib) == 3

"""AdaRound: before any step its rounding is PTQ's bit for bit; it changes integer weights only (scales, zero
points and biases bit-identical), keeps them in the int8 narrow range, lowers every layer's reconstruction
error, handles every weighted op the backends lower, and is deterministic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qconvert.errors import UsageError
from qconvert.quant.evaluate import run_first_output
from qconvert.quant.params import quantize_weight, weight_scales
from qconvert.report.metrics import sqnr_db
from qconvert.train.adaround import AdaRoundOptions, adaround, hard_codes, initial_rounding
from qconvert.train.layerwise import Capture, LayerFunction, QuantizedLayer, bias_dequantized, quantized_layers
from tests.passes.helpers import parse
from tests.train.layer_models import changed_initializers, every_layer, initializer_arrays, quantized, samples

FAST = dict(iterations=120, threads=1)


@pytest.fixture(scope="module")
def model():
    return every_layer()


@pytest.fixture(scope="module")
def calib():
    return samples(64, seed=1)


@pytest.fixture(scope="module", params=[True, False], ids=["per-channel", "per-tensor"])
def qdq(request, model, calib):
    return quantized(model, calib, request.param)


def test_initial_rounding_is_ptqs_nearest_rounding_ties_included(model, calib):
    layer = next(x for x in quantized_layers(quantized(model, calib, True), model) if isinstance(x, QuantizedLayer))
    scale = layer.scale.reshape(-1, 1, 1, 1)
    weight, s = layer.weight.copy(), layer.scale
    for c in range(8):  # half-way cases (even and odd below), and the range's ends
        weight[c, 0, 0, :2] = (np.array([c - 4.5, c + 0.5]) * s[c]).astype(np.float32)
        weight[c, 1, 1, 1] = (-1) ** c * 127 * s[c]
    tied = dataclasses.replace(layer, weight=weight)
    ratio = weight / scale
    assert np.sum(np.abs(ratio - np.floor(ratio) - 0.5) < 1e-6) >= 10  # the half-way cases are there
    base, v = initial_rounding(tied)
    np.testing.assert_array_equal(hard_codes(tied, base, v), quantize_weight(weight, layer.scale, 0))
    np.testing.assert_array_equal(quantize_weight(layer.weight, weight_scales(layer.weight, 0), 0),
                                  layer.codes.const_value.numpy())  # and PTQ's own scales are what the IR has


def test_zero_steps_give_ptq_back_bit_for_bit(qdq, model, calib):
    result, facts = adaround(qdq, model, calib, AdaRoundOptions(iterations=0, threads=1))
    assert changed_initializers(result, qdq) == set()
    rounded = [r for r in facts["layers"] if "skipped" not in r]
    assert [r["flipped"] for r in rounded] == [0.0] * 5
    assert all(r["mse_adaround"] == r["mse_nearest"] for r in rounded)


def test_adaround_changes_integer_weights_only_and_lowers_every_layers_error(qdq, model, calib):
    result, facts = adaround(qdq, model, calib, AdaRoundOptions(**FAST))
    layers = facts["layers"]
    assert [(r["layer"], r["op"]) for r in layers] == [("conv", "Conv"), ("depthwise", "Conv"),
                                                       ("transpose", "ConvTranspose"), ("gemm", "Gemm"),
                                                       ("matmul", "MatMul")]
    weights = {f"w{i}_quantized" for i in range(1, 6)}
    changed = changed_initializers(result, qdq)
    assert changed and changed <= weights  # scales, zero points, int32 biases: bit for bit
    assert [n.op_type for n in result.graph] == [n.op_type for n in qdq.graph]
    for name in weights:
        codes = result.graph.initializers[name].const_value.numpy()
        assert codes.dtype == np.int8 and codes.min() >= -127 and codes.max() <= 127
        # AdaRound rounds each weight down or up: never further than one step from W/s
        before = qdq.graph.initializers[name].const_value.numpy().astype(int)
        assert np.abs(codes.astype(int) - before).max() <= 1
    for record in layers:
        assert record["mse"] <= record["mse_nearest"], record
        kept = record["mse_adaround"] if record["kept"] == "adaround" else record["mse_nearest"]
        assert record["mse"] == kept
        assert record["samples"] == 64 and record["target"] == "float"
    ratios = [r["mse"] / r["mse_nearest"] for r in layers]
    assert np.mean(ratios) < 0.97, ratios
    assert sum(r["kept"] == "adaround" for r in layers) >= 3
    held_out = samples(128, seed=7)
    reference = run_first_output(model, held_out)
    ptq, ours = (sqnr_db(reference, run_first_output(m, held_out)) for m in (qdq, result))
    assert ours >= ptq - 0.1, (ptq, ours)


def test_the_same_seed_gives_the_same_codes(model, calib):
    qdq = quantized(model, calib, False)
    options = AdaRoundOptions(iterations=40, threads=1)
    runs = [adaround(qdq, model, calib, dataclasses.replace(options, seed=seed))[0] for seed in (3, 3, 4)]
    assert changed_initializers(runs[0], runs[1]) == set()
    assert changed_initializers(runs[0], runs[2])  # another seed, other batches


def test_a_layers_function_is_the_ir_layers(model, calib):
    """LayerFunction (the one-node program AdaRound optimises through) computes what the float IR computes:
    each layer's output from its input, with the float weights, for every weighted op."""
    capture = Capture(model, torch.device("cpu"))
    layers = [x for x in quantized_layers(quantized(model, calib, True), model) if isinstance(x, QuantizedLayer)]
    float_nodes = {node.name: node for node in model.graph}
    for layer in layers:
        x = capture.tensor(layer.float_input, calib, 32)
        function = LayerFunction(layer, tuple(x.shape), 17)
        bias = torch.from_numpy(layer.bias_float) if layer.bias_float is not None else None
        pre, post = function(x, torch.from_numpy(layer.weight), bias)
        node = float_nodes[layer.node.name]
        expected = capture.tensor(node.outputs[0].name, calib, 32)
        torch.testing.assert_close(pre, expected, rtol=1e-5, atol=1e-5)
        fused = layer.fused.outputs[0].name if layer.fused is not None else node.outputs[0].name
        torch.testing.assert_close(post, capture.tensor(fused, calib, 32), rtol=1e-5, atol=1e-5)
        assert (layer.fused is not None) == (layer.name != "matmul")
        q_bias = bias_dequantized(layer)
        assert (q_bias is None) == (layer.name == "matmul")


def test_layers_it_cannot_round_are_skipped_and_say_why(calib):
    shared = parse("""<ir_version: 8, opset_import: ["" : 17]>
    shared (float[N, 4] x) => (float[N, 4] y)
    <float[4, 4] w = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.2, -0.1, 0.3, 0.3, -0.2, 0.1}>
    { h = MatMul (x, w)
      y = MatMul (h, w) }""")
    feeds = {"x": np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)}
    qdq = quantized(shared, feeds, True)
    result, facts = adaround(qdq, shared, feeds, AdaRoundOptions(**FAST))
    assert [r.get("skipped") for r in facts["layers"]] == ["weight shared with another layer"] * 2
    assert changed_initializers(result, qdq) == set()
    other = every_layer()
    for value in list(other.graph.initializers.values()):  # a float IR whose weights have other names
        value.name = f"other_{value.name}"
    qdq = quantized(every_layer(), calib, True)
    result, facts = adaround(qdq, other, calib, AdaRoundOptions(**FAST))
    assert {r.get("skipped") for r in facts["layers"]} == {"no float weight of its name in the float IR"}
    assert initializer_arrays(result).keys() == initializer_arrays(qdq).keys()
    moved = every_layer(seed=5)  # the same names, other weights: not what the QDQ IR's codes were rounded from
    result, facts = adaround(qdq, moved, calib, AdaRoundOptions(**FAST))
    assert {r.get("skipped") for r in facts["layers"]} == {"integer weights are not the float weight rounded"}
    assert changed_initializers(result, qdq) == set()


def test_the_memory_budget_caps_a_layers_samples(model, calib):
    qdq = quantized(model, calib, True)
    _, facts = adaround(qdq, model, calib, AdaRoundOptions(iterations=5, memory_mb=0.05, threads=1))
    # conv: 4·6·6 floats in, 8·6·6 out per sample; 0.05 MiB holds 30 samples of both
    assert facts["layers"][0]["samples"] == int(0.05 * 2 ** 20) // ((4 + 8) * 36 * 4) == 30
    assert facts["layers"][-1]["samples"] == 64  # the MatMul's 6 in, 3 out


@pytest.mark.parametrize("options, message", [
    (dict(iterations=-1), "iterations"), (dict(warmup=1.5), "warmup"), (dict(lr=0), "lr"),
    (dict(target_inputs="labels"), "target_inputs"), (dict(beta=(20.0, 0.0)), "beta"), (dict(memory_mb=0), "memory"),
])
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        AdaRoundOptions(**options)

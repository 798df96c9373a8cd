"""The output-error search of weight scales (QAT's starting point): a per-tensor scale stretched by a channel
that only sees zeros shrinks to the live channels' range and the layer's output error falls by orders of
magnitude in onnxruntime; the clipped weights sit at ±127, the int32 bias is requantized at s_x·s_w'; a
scale that calibration already got right stays bit for bit; the per-layer error never rises."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.errors import UsageError
from qconvert.quant.evaluate import run_first_output
from qconvert.train.weight_scales import STEPS_PER_OCTAVE, WeightScaleOptions, search_weight_scales
from tests.train.layer_models import (changed_initializers, dead_channel_depthwise, dead_samples, every_layer,
                                      initializer_arrays, quantized, samples)

ONE_THREAD = WeightScaleOptions(threads=1)


def sqnr_db(result: np.ndarray, reference: np.ndarray) -> float:
    noise = np.sum((result.astype(np.float64) - reference) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(noise, 1e-30)))


def test_a_dead_channel_no_longer_sets_the_per_tensor_scale():
    model, calib, held_out = dead_channel_depthwise(), dead_samples(64, seed=1), dead_samples(64, seed=2)
    qdq = quantized(model, calib, per_channel=False)
    result, facts = search_weight_scales(qdq, model, calib, ONE_THREAD)
    assert changed_initializers(result, qdq) == _names_changed(result)
    before = sqnr_db(run_first_output(qdq, held_out), run_first_output(model, held_out))
    after = sqnr_db(run_first_output(result, held_out), run_first_output(model, held_out))
    assert before < 10 and after > 35, (before, after)
    record = facts["layers"][0]
    assert record["changed"] == 1 and record["mse"] < 1e-3 * record["mse_calibration"]
    # channel 0 is 300x the others: the scale shrinks by about that, by a power of 2^(1/8)
    alpha = record["smallest_alpha"]
    steps = -np.log2(alpha) * STEPS_PER_OCTAVE
    assert abs(steps - round(steps)) < 1e-4 and 1 / 600 < alpha < 1 / 100

    arrays, old = initializer_arrays(result), initializer_arrays(qdq)
    scale_name, codes_name, bias_name, bias_scale_name = _layer_initializers(result)
    np.testing.assert_array_equal(arrays[scale_name], (old[scale_name] * np.float32(alpha)).astype(np.float32))
    codes = arrays[codes_name]
    assert np.all(np.abs(codes[0]) == 127) and np.abs(codes).max() == 127  # the dead channel clipped
    weight = initializer_arrays(model)["w"]
    np.testing.assert_array_equal(codes[1:], np.clip(np.round(weight[1:] / arrays[scale_name]), -127, 127))
    input_scale = _input_scale(result)
    np.testing.assert_array_equal(arrays[bias_scale_name], (input_scale * arrays[scale_name]).astype(np.float32))
    bias = initializer_arrays(model)["b"].astype(np.float64)
    np.testing.assert_array_equal(arrays[bias_name], np.round(bias / arrays[bias_scale_name].astype(np.float64)))


def _layer_initializers(model) -> tuple[str, str, str, str]:
    """The conv's weight scale, integer weight, int32 bias and bias scale initializer names."""
    conv = next(n for n in model.graph if n.op_type == "Conv")
    weight_dq, bias_dq = conv.inputs[1].producer(), conv.inputs[2].producer()
    return weight_dq.inputs[1].name, weight_dq.inputs[0].name, bias_dq.inputs[0].name, bias_dq.inputs[1].name


def _names_changed(result) -> set[str]:
    scale, codes, bias, bias_scale = _layer_initializers(result)
    return {scale, codes, bias, bias_scale}


def _input_scale(model) -> np.float32:
    conv = next(n for n in model.graph if n.op_type == "Conv")
    return conv.inputs[0].producer().inputs[1].const_value.numpy().astype(np.float32)


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_no_layer_error_rises_and_only_weight_scales_codes_and_biases_change(per_channel):
    model, calib = every_layer(), samples(64, seed=1)
    qdq = quantized(model, calib, per_channel)
    result, facts = search_weight_scales(qdq, model, calib, ONE_THREAD)
    assert [n.op_type for n in result.graph] == [n.op_type for n in qdq.graph]
    records = [r for r in facts["layers"] if "skipped" not in r]
    assert [r["layer"] for r in records] == ["conv", "depthwise", "transpose", "gemm", "matmul"]
    for record in records:
        assert record["mse"] <= record["mse_calibration"], record
        assert (record["changed"] == 0) == (record["mse"] == record["mse_calibration"]), record
    changed = changed_initializers(result, qdq)
    weight_related = {name for name in initializer_arrays(qdq)
                      if name.startswith(("w", "b")) and ("scale" in name or "quantized" in name)}
    assert changed <= weight_related, changed - weight_related
    unchanged = {r["layer"] for r in records if r["changed"] == 0}
    for node in result.graph:  # a layer whose scale stayed keeps its integers bit for bit
        if node.name in unchanged:
            codes = node.inputs[1].producer().inputs[0].name
            assert codes not in changed


@pytest.mark.parametrize("options, message", [(dict(samples=0), "samples"), (dict(threads=0), "threads")])
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        WeightScaleOptions(**options)

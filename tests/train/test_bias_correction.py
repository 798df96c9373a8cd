"""Empirical bias correction: only int32 biases change (weights and scales bit-identical), each corrected
layer's per-channel mean output error falls, measured in onnxruntime as well as in its facts, a layer
without a bias is skipped and says so."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.errors import UsageError
from qconvert.quant.evaluate import run_first_output
from qconvert.train.bias_correction import BiasCorrectionOptions, correct_biases
from tests.train.layer_models import changed_initializers, every_layer, one_conv, quantized, samples

ONE_THREAD = BiasCorrectionOptions(threads=1)


def channel_mean_error(qdq, model, feeds) -> np.ndarray:
    """|mean over samples and positions of QDQ output - float output|, per channel (axis 1)."""
    error = run_first_output(qdq, feeds).astype(np.float64) - run_first_output(model, feeds)
    return np.abs(error.mean(axis=tuple(i for i in range(error.ndim) if i != 1)))


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_only_int32_biases_change_and_every_layer_with_a_bias_is_corrected(per_channel):
    model, calib = every_layer(), samples(64, seed=1)
    qdq = quantized(model, calib, per_channel)
    result, facts = correct_biases(qdq, model, calib, ONE_THREAD)
    changed = changed_initializers(result, qdq)
    assert changed and changed <= {f"b{i}_quantized" for i in range(1, 5)}
    assert all(result.graph.initializers[name].const_value.numpy().dtype == np.int32 for name in changed)
    assert [n.op_type for n in result.graph] == [n.op_type for n in qdq.graph]
    layers = {r["layer"]: r for r in facts["layers"]}
    assert layers["matmul"] == {"layer": "matmul", "op": "MatMul", "skipped": "no bias"}
    for name in ("conv", "depthwise", "transpose", "gemm"):
        record = layers[name]
        assert record["mean_error_after"] <= record["mean_error_before"], record
    # where the shift is more than the int32 grid, the correction removes most of it
    assert layers["depthwise"]["mean_error_after"] < 0.2 * layers["depthwise"]["mean_error_before"]


def test_the_mean_error_of_a_layer_falls_in_onnxruntime():
    """One Conv whose per-tensor weight grid is coarse (an outlier weight): its channels' mean output errors
    on the calibration samples and on others, before and after the correction."""
    model = one_conv()
    calib, held_out = samples(128, seed=1, offset=0.5), samples(128, seed=2, offset=0.5)
    qdq = quantized(model, calib, per_channel=False)
    result, facts = correct_biases(qdq, model, calib, ONE_THREAD)
    assert changed_initializers(result, qdq) == {"b_quantized"}
    before, after = channel_mean_error(qdq, model, calib), channel_mean_error(result, model, calib)
    assert before.mean() > 1e-3 and after.mean() < 0.05 * before.mean(), (before, after)
    assert np.all(after <= before + 1e-6)
    record = facts["layers"][0]
    # the facts measure against the float layer on the same int8 input; onnxruntime's float model reads
    # the float input, whose quantization error is the 2% between them
    np.testing.assert_allclose(record["mean_error_before"], before.mean(), rtol=0.05)
    assert record["mean_error_after"] < 0.05 * record["mean_error_before"]
    held_before, held_after = channel_mean_error(qdq, model, held_out), channel_mean_error(result, model, held_out)
    assert held_after.mean() < 0.3 * held_before.mean(), (held_before, held_after)


def test_float_inputs_also_take_the_error_the_layers_before_pass_on():
    model, calib = every_layer(), samples(64, seed=1)
    qdq = quantized(model, calib, False)
    result, facts = correct_biases(qdq, model, calib, BiasCorrectionOptions(target_inputs="float", threads=1))
    records = [r for r in facts["layers"] if "skipped" not in r]
    assert [r["target"] for r in records] == ["float"] * 4
    assert all(r["mean_error_after"] <= r["mean_error_before"] for r in records)
    # the model's output mean error (per class), which the last biased layer's correction reaches
    assert channel_mean_error(result, model, calib).mean() <= channel_mean_error(qdq, model, calib).mean()


@pytest.mark.parametrize("options, message", [
    (dict(samples=0), "samples"), (dict(target_inputs="labels"), "target_inputs"), (dict(threads=0), "threads"),
])
def test_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        BiasCorrectionOptions(**options)

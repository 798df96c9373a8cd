"""Each calibration method against ranges and scales computed by hand on known tensors."""

import numpy as np
import pytest

from qconvert.quant.observers import BINS, make_observer
from qconvert.quant.params import activation_params, fake_quantize, quantize_bias, weight_scales


def observe(method, *batches, **kwargs):
    observer = make_observer(method, **kwargs)
    for batch in batches:
        observer.observe(np.asarray(batch, dtype=np.float32))
    if observer.needs_histogram:
        for batch in batches:
            observer.observe_histogram(np.asarray(batch, dtype=np.float32))
    return observer.range()


def test_minmax_is_the_extremes():
    assert observe("minmax", [[-1.0, 2.0]], [[5.0, 0.5]]) == (-1.0, 5.0)


def test_moving_average_steps_once_per_sample():
    # sample 1: [0, 10] starts the average; sample 2: [-10, 20] moves it 1% of the way.
    lo, hi = observe("moving-average", [[0.0, 10.0], [-10.0, 20.0]])
    assert lo == pytest.approx(-0.1) and hi == pytest.approx(10.1)


def test_percentile_cuts_both_tails():
    values = np.arange(10000, dtype=np.float32)[None]  # 0..9999, one value each
    lo, hi = observe("percentile", values, percentile=99.0)
    width = 9999 / BINS
    assert abs(lo - 100) <= width and abs(hi - 9900) <= width


def test_percentile_100_is_minmax():
    data = np.random.default_rng(0).standard_normal((4, 1000))
    lo, hi = observe("percentile", data, percentile=100.0)
    assert lo == pytest.approx(data.min(), abs=1e-5) and hi == pytest.approx(data.max(), abs=1e-5)


def test_entropy_clips_a_lone_outlier():
    # 10 000 values in [0, 1] and one at 100, binned over [0, 100]: every window of 256+ bins keeps the
    # bulk, so the KL-best window is one of the narrowest; the outlier is clipped far below 100.
    data = np.concatenate([np.linspace(0, 1, 10000), [100.0]])[None]
    lo, hi = observe("entropy", data)
    assert lo == 0.0 and 100 * 256 / BINS <= hi <= 100 * 512 / BINS


def test_entropy_keeps_the_bulk_of_a_gaussian():
    data = np.random.default_rng(0).standard_normal((10, 10000))
    lo, hi = observe("entropy", data)
    assert 2.5 < hi <= data.max() and data.min() <= lo < -2.5


def _true_mse(data, lo, hi):
    scale, zero_point = activation_params(lo, hi)
    return float(np.mean((data - fake_quantize(data, scale, zero_point)) ** 2))


def test_mse_finds_a_near_optimal_clip():
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.uniform(0, 1, 200000), rng.uniform(1, 8, 20)]).astype(np.float32)
    lo, hi = observe("mse", data[None])
    # Brute force over a fine grid of upper bounds, with the real quantize/dequantize error.
    best = min(_true_mse(data, 0.0, h) for h in np.linspace(0.5, 8, 300))
    assert _true_mse(data, lo, hi) <= 1.05 * best
    assert 1.0 < hi < 8.0  # it clips the sparse tail but keeps the bulk
    assert _true_mse(data, lo, hi) < _true_mse(data, 0.0, float(data.max()))


def test_affine_int8_scale_and_zero_point_by_hand():
    scale, zero_point = activation_params(-1.0, 5.0, "int8")
    assert scale == pytest.approx(6 / 255) and zero_point == -86  # round(-128 + 1 / (6/255)) = round(-85.5)


def test_ranges_widen_to_include_zero():
    scale, zero_point = activation_params(2.0, 4.0, "uint8")
    assert scale == pytest.approx(4 / 255) and zero_point == 0


def test_symmetric_activations_by_hand():
    assert activation_params(-1.0, 5.0, "int8", symmetric=True) == (pytest.approx(10 / 255), 0)
    assert activation_params(-1.0, 5.0, "uint8", symmetric=True) == (pytest.approx(10 / 255), 128)


def test_weight_scales_per_channel_and_per_tensor():
    w = np.array([[1.0, -2.54], [0.127, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(weight_scales(w, 0), [2.54 / 127, 0.127 / 127], rtol=1e-6)
    np.testing.assert_allclose(weight_scales(w, None), 2.54 / 127, rtol=1e-6)


def test_bias_is_int32_over_input_times_weight_scale():
    q, scale = quantize_bias(np.array([0.5, -1.0], np.float32), np.float32(0.1), np.array([0.01, 0.02], np.float32))
    np.testing.assert_allclose(scale, [0.001, 0.002], rtol=1e-6)
    assert q.dtype == np.int32 and q.tolist() == [500, -500]

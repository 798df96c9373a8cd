"""The tiny PyTorch and Keras fixtures through qconvert.api.convert to the three TFLite targets, and
the sizes of the fp16 and dynamic-range files against fp32 on a model with enough weights to matter."""

import numpy as np
import pytest

from qconvert.api import convert
from qconvert.backends.targets import EmitOptions, all_targets
from tests.backends.tflite.helpers import check, model, op_names, weights

TARGETS = ["tflite-fp32", "tflite-fp16", "tflite-dynamic"]
QUICK = {"threads": 1, "runs": 2, "warmup": 1, "parity_samples": 8}


def rows(result) -> dict:
    return {row.target: row for row in result.rows}


@pytest.fixture(scope="module")
def torch_result(tiny_torch, tmp_path_factory):
    return convert(f"{tiny_torch['factory']}:build", TARGETS, input_shapes=["1,3,16,16"], trust_code=True,
                   out_dir=tmp_path_factory.mktemp("tflite_torch"), **QUICK)


@pytest.fixture(scope="module")
def keras_result(tiny_keras, tmp_path_factory):
    return convert(str(tiny_keras["h5"]), TARGETS, out_dir=tmp_path_factory.mktemp("tflite_keras"), **QUICK)


@pytest.mark.parametrize("which", ["torch_result", "keras_result"])
def test_every_target_meets_its_parity_floor(which, request):
    result = request.getfixturevalue(which)
    floors = {name: target.parity_floor_db for name, target in all_targets().items()}
    for name in TARGETS:
        row = rows(result)[name]
        assert row.status == "ok", (name, row.error)
        assert row.sqnr_db >= floors[name], (name, row.sqnr_db)
    assert rows(result)["tflite-fp32"].sqnr_db >= 60


def transposes(row) -> int:
    with open(row.path, "rb") as f:
        return op_names(f.read()).count("TRANSPOSE")


def test_keras_source_has_no_transpose(keras_result):
    assert all(transposes(rows(keras_result)[name]) == 0 for name in TARGETS)


def test_torch_source_has_at_most_one_transpose(torch_result):
    assert all(transposes(rows(torch_result)[name]) <= 1 for name in TARGETS)


def test_keras_baseline_computes_the_same(tiny_keras, keras_result, tmp_path):
    """from_keras_model on the .h5, the bench's reference point, opens in the same runner."""
    from qconvert.backends.tflite.keras_baseline import write_keras_baseline
    from qconvert.backends.tflite.runtime import open_session

    baseline = write_keras_baseline(tiny_keras["h5"], tmp_path / "baseline.tflite")
    ours = rows(keras_result)["tflite-fp32"]
    x = np.random.default_rng(0).random((2, 16, 16, 3), np.float32)
    outputs = []
    for path in (ours.path, str(baseline)):
        session = open_session(path, {}, "cpu", 1)
        outputs.append(session.run(session.prepare({"image": x}))[0])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5, rtol=0)


def wide_net():
    """About 0.6 M weights in convolutions and a dense head: enough that file overhead is noise."""
    body = """g (float[N, 16, 8, 8] x, float[128, 16, 3, 3] w1, float[128, 128, 3, 3] w2, float[10, 8192] fc,
                 float[128] b1) => (float[N, 10] y) {
        c = Conv <pads = [1, 1, 1, 1]> (x, w1, b1)
        r = Relu(c)
        d = Conv <pads = [1, 1, 1, 1]> (r, w2)
        s = Relu(d)
        f = Flatten(s)
        y = Gemm <transB = 1> (f, fc)
    }"""
    return model(body, {"w1": weights(128, 16, 3, 3, scale=0.1), "w2": weights(128, 128, 3, 3, scale=0.03),
                        "fc": weights(10, 8192, scale=0.01), "b1": weights(128, scale=0.1)})


def test_fp16_and_dynamic_range_shrink_the_file(tmp_path):
    sizes = {}
    for name in TARGETS:
        path = tmp_path / f"{name}.tflite"
        all_targets()[name].emit(wide_net(), path, EmitOptions())
        sizes[name] = path.stat().st_size
    assert sizes["tflite-fp16"] <= 0.52 * sizes["tflite-fp32"]
    assert sizes["tflite-dynamic"] <= 0.30 * sizes["tflite-fp32"]


def test_wide_net_is_exact_in_fp32(tmp_path):
    rng = np.random.default_rng(0)
    ops = check(wide_net(), tmp_path, atol=1e-4, feeds={"x": rng.standard_normal((2, 16, 8, 8), np.float32)})
    assert ops.count("TRANSPOSE") == 1  # at the input only: the dense layer reads the NHWC flatten

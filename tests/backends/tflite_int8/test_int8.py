"""tflite-int8 / tflite-uint8: the IR's QDQ lowered with its exact scales, integer ops only, the I/O
contract, and the cross-runtime int8 parity matrix."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir
import pytest

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite import quantized
from qconvert.backends.tflite.runtime import LiteRTSession, dequantize, quantize
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import run

WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _qdq(path, samples: int = 32) -> ir.Model:
    from qconvert.converters import load_source
    from qconvert.passes import cleanup

    graph = cleanup(load_source(str(path)).ir)
    return quantize_static(graph, random_feeds(specs_from_ir(graph), samples, 3), QuantConfig())


@pytest.fixture(scope="module")
def classifier(tiny_onnx):
    """TinyNet (conv-bn-relu, strided conv, mean, linear) as a QDQ IR, with its int8 and uint8 files."""
    model = _qdq(tiny_onnx)
    return model, {io: quantized.convert(model, io, EmitOptions(), f"tflite-{io}") for io in ("int8", "uint8")}


@pytest.fixture(scope="module")
def segmenter(tiny_keras):
    """A Keras UNet-like net (NHWC, max-pool, upsampling, concat, sigmoid) as a QDQ IR and its uint8 file."""
    model = _qdq(tiny_keras["h5"])
    return model, quantized.convert(model, "uint8", EmitOptions(), "tflite-uint8")


@pytest.mark.parametrize("io", ["int8", "uint8"])
def test_scales_in_the_file_are_the_irs(classifier, io):
    model, files = classifier
    flatbuffer, facts = files[io]
    inspection = quantized.inspect_flatbuffer(flatbuffer)
    wanted = quantized.ir_scales(model)
    # Activations: every one is one of the IR's (scale, zero point) pairs.
    pairs = {(round(s, 9), zp) for s, zp in wanted.values()}
    checked = quantized.check_scales(inspection, wanted, "t")["checked"]
    assert facts["quantization"]["weight_scales_match_ir"]
    assert checked >= 4 and facts["quantization"]["scales_checked"] == checked
    tensors = inspection["tensors"]
    for op in inspection["ops"]:
        for index in op["outputs"]:
            tensor = tensors[index]
            if op["op"] != "QUANTIZE" and tensor["dtype"] == "int8":
                assert min(abs(s - tensor["scales"][0]) / s for s, _ in pairs) < 1e-5
    # Weights: per channel, exactly the IR's scales; bias: int32 with s_in · s_w.
    ir_weights = quantized.ir_weight_scales(model)
    weighted = [op for op in inspection["ops"] if op["op"] in WEIGHTED]
    assert len(weighted) == len(ir_weights) == 3
    for op in weighted:
        data, weight, bias = (tensors[i] for i in op["inputs"])
        scales = np.asarray(weight["scales"])
        assert weight["dtype"] == "int8" and set(weight["zero_points"]) == {0}
        assert any(w.shape == scales.shape and np.allclose(w, scales, rtol=1e-6) for w in ir_weights)
        assert bias["dtype"] == "int32"
        np.testing.assert_allclose(bias["scales"], data["scales"][0] * scales, rtol=1e-5)


@pytest.fixture(scope="module")
def depthwise_pt2(tmp_path_factory):
    """A MobileNet-style net: conv, depthwise conv, pointwise conv, a strided transposed conv, mean, linear."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU6(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.ReLU6(), torch.nn.Conv2d(8, 16, 1), torch.nn.ReLU(), torch.nn.ConvTranspose2d(16, 8, 3, stride=2),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    path = tmp_path_factory.mktemp("depthwise") / "dw.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(2, 3, 16, 16),), dynamic_shapes={"input": {0: batch}})
    torch.export.save(program, path)
    return path


def test_per_tensor_weights_keep_the_irs_one_scale(depthwise_pt2, tmp_path):
    """Every weighted op, dense and convolutional, holds the IR's one weight scale, and the file computes the
    IR's function (a per-channel scale derived from the values would round the weights again)."""
    from qconvert.converters import load_source
    from qconvert.passes import cleanup

    graph = cleanup(load_source(str(depthwise_pt2)).ir)
    model = quantize_static(graph, random_feeds(specs_from_ir(graph), 16, 3), QuantConfig(per_channel=False))
    assert not quantized.per_channel_weights(model)
    flatbuffer, facts = quantized.convert(model, "int8", EmitOptions(), "tflite-int8")
    inspection = quantized.inspect_flatbuffer(flatbuffer)
    weighted = [op for op in inspection["ops"] if op["op"] in WEIGHTED | {"TRANSPOSE_CONV"}]
    assert {op["op"] for op in weighted} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert [len(inspection["tensors"][op["inputs"][1]]["scales"]) for op in weighted] == [1] * len(weighted)
    assert facts["quantization"]["weight_scales_match_ir"] is True
    assert not [op["op"] for op in inspection["ops"] if op["float"]]
    path = tmp_path / "m.tflite"
    path.write_bytes(flatbuffer)
    feeds = random_feeds(specs_from_ir(model), 8, 11)
    session = LiteRTSession(str(path), facts, "cpu", 1)
    got = session.finish(session.run(session.prepare(feeds)))[0]
    want = run(model, feeds)[0]
    assert sqnr_db(want, got) > 35
    assert np.max(np.abs(got - want)) <= 2 * facts["io"]["outputs"][0]["scale"]


@pytest.mark.parametrize("io", ["int8", "uint8"])
def test_every_op_is_integer_and_io_has_the_wanted_type(classifier, segmenter, io):
    for flatbuffer, facts in (classifier[1][io], segmenter[1]) if io == "uint8" else (classifier[1][io],):
        inspection = quantized.inspect_flatbuffer(flatbuffer)
        assert not [op["op"] for op in inspection["ops"] if op["float"]]
        assert quantized.inner_requantize(inspection) == []
        for op in inspection["ops"]:
            assert not any(d.startswith("float") for d in op["input_dtypes"] + op["output_dtypes"]), op["op"]
        ports = facts["io"]["inputs"] + facts["io"]["outputs"]
        assert {p["dtype"] for p in ports} == {io}
        assert all(p["scale"] > 0 and isinstance(p["zero_point"], int) for p in ports)
        assert facts["quantization"]["float_ops"] == [] and facts["quantization"]["float_layers"] == []


def test_sigmoid_output_has_the_kernels_fixed_scale(segmenter):
    _, (flatbuffer, facts) = segmenter
    assert [f.split()[0] for f in facts["quantization"]["fixed_by_kernel"]] == ["LOGISTIC"]
    assert facts["io"]["outputs"][0]["scale"] == pytest.approx(1 / 256)
    assert "TRANSPOSE" not in [op["op"] for op in quantized.inspect_flatbuffer(flatbuffer)["ops"]]


def test_quantize_round_trip_helpers():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    for dtype, zero_point in ((np.uint8, 128), (np.int8, 0)):
        q = quantize(x, 1 / 127, zero_point, dtype)
        assert q.dtype == dtype
        np.testing.assert_allclose(dequantize(q, 1 / 127, zero_point), x, atol=0.5 / 127 + 1e-7)
    assert quantize(np.array([5.0]), 0.01, 0, np.uint8)[0] == 255  # saturates


@pytest.mark.parametrize("which", ["classifier", "segmenter"])
def test_uint8_io_round_trip_matches_onnxruntime_on_the_qdq_ir(classifier, segmenter, tmp_path, which):
    model, (flatbuffer, facts) = segmenter if which == "segmenter" else (classifier[0], classifier[1]["uint8"])
    path = tmp_path / "m.tflite"
    path.write_bytes(flatbuffer)
    feeds = random_feeds(specs_from_ir(model), 8, 11)
    session = LiteRTSession(str(path), facts, "cpu", 1)
    prepared = session.prepare(feeds)
    assert all(array.dtype == np.uint8 for array in prepared.values())
    outputs = session.finish(session.run(prepared))
    expected = run(model, feeds)
    step = facts["io"]["outputs"][0]["scale"]
    for got, want in zip(outputs, expected):
        assert got.dtype == np.float32 and got.shape == want.shape
        assert sqnr_db(want, got) > 30
        assert np.max(np.abs(got - want)) <= 4 * step


def test_ir_without_qdq_is_refused(tiny_onnx):
    from qconvert.converters import load_source

    with pytest.raises(ValueError, match="no QuantizeLinear"):
        quantized.convert(load_source(str(tiny_onnx)).ir, "int8", EmitOptions(), "tflite-int8")


def test_parity_matrix_unit():
    from qconvert.report.int8_parity import parity_markdown, parity_matrix

    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 10)).astype(np.float32)
    b = a + 0.1 * (rng.random((16, 10)) > 0.9)
    entries = parity_matrix({"x": [a], "y": [a.copy()], "z": [b]}, [0.1])
    assert [(e.a, e.b) for e in entries] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert entries[0].sqnr_db == float("inf") and entries[0].max_steps == 0
    assert entries[1].max_steps == pytest.approx(1.0, rel=1e-5) and entries[1].top1_agreement <= 1
    assert "| x | z |" in parity_markdown(entries)


def test_cross_runtime_parity_in_the_report(tiny_onnx, tmp_path):
    import qconvert
    from qconvert.report.markdown import report_markdown

    calib = tmp_path / "calib.npz"
    specs = specs_from_ir(_qdq(tiny_onnx, 2))
    np.savez(calib, **random_feeds(specs, 32, 3))
    result = qconvert.convert(str(tiny_onnx), to=["onnx-qdq", "tflite-int8", "tflite-uint8"], out_dir=tmp_path / "o",
                              calib=str(calib), threads=1, runs=2, warmup=1, parity_samples=8)
    assert all(row.status == "ok" for row in result.rows), [(r.target, r.error) for r in result.rows]
    pairs = {(e.a, e.b): e for e in result.int8_parity}
    assert set(pairs) == {("onnx-qdq", "tflite-int8"), ("onnx-qdq", "tflite-uint8"), ("tflite-int8", "tflite-uint8")}
    for entry in pairs.values():
        assert entry.sqnr_db >= 30 and entry.max_steps <= 3
        assert entry.top1_agreement >= 0.75
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert len(data["int8_parity"]) == 3
    contract = json.loads((tmp_path / "o" / "tiny.uint8.tflite.io.json").read_text())
    assert contract["inputs"][0]["dtype"] == "uint8" and contract["outputs"][0]["scale"] > 0
    assert not list((tmp_path / "o").glob(".*partial*"))
    assert "int8 artifacts against each other" in report_markdown(result)


def test_layers_kept_float_run_float_and_are_reported(tiny_onnx):
    from qconvert.converters import load_source
    from qconvert.passes import cleanup

    graph = cleanup(load_source(str(tiny_onnx)).ir)
    model = quantize_static(graph, random_feeds(specs_from_ir(graph), 16, 3), QuantConfig(),
                            exclude={"/conv2/Conv"})
    flatbuffer, facts = quantized.convert(model, "uint8", EmitOptions(), "tflite-uint8")
    assert facts["quantization"]["float_layers"] == ["/conv2/Conv"]
    assert "CONV_2D" in facts["quantization"]["float_ops"]
    ops = quantized.inspect_flatbuffer(flatbuffer)["ops"]
    assert [op["op"] for op in ops if op["op"] in WEIGHTED and op["float"]] == ["CONV_2D"]
    assert [op["op"] for op in ops if op["op"] in WEIGHTED and not op["float"]] == ["CONV_2D", "FULLY_CONNECTED"]

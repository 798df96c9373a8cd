"""The ONNX targets through the child-process runner, and how the runner reports trouble."""

import numpy as np
import onnx_ir as ir

from qconvert.backends.measure import RunSettings, measure_in_child
from qconvert.backends.onnx.emit import emit_fp16, emit_fp32
from qconvert.backends.targets import all_targets
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import parse

OPENER = "qconvert.backends.onnx.runtime:open_session"
SETTINGS = RunSettings(threads=1, warmup=1, runs=3, min_seconds=0.0)


def mlp() -> ir.Model:
    rng = np.random.default_rng(0)
    w1 = ", ".join(f"{v:.6f}" for v in rng.standard_normal(64 * 128) * 0.1)
    w2 = ", ".join(f"{v:.6f}" for v in rng.standard_normal(128 * 10) * 0.1)
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 64] x) => (float[N, 10] y) <float[64, 128] w1 = {{{w1}}}, float[128, 10] w2 = {{{w2}}}> {{
            h = MatMul(x, w1)
            r = Relu(h)
            z = MatMul(r, w2)
            y = Softmax(z)
        }}
    """)


def _measure(path, feeds, settings=SETTINGS, opener=OPENER):
    return measure_in_child(opener, str(path), {}, feeds, feeds, settings)


def test_fp16_halves_the_size_and_keeps_fp32_io(tmp_path):
    model = mlp()
    emit_fp32(model, tmp_path / "m32.onnx")
    emit_fp16(model, tmp_path / "m16.onnx")
    feeds = random_feeds(specs_from_ir(model), 8, 0)
    full, half = _measure(tmp_path / "m32.onnx", feeds), _measure(tmp_path / "m16.onnx", feeds)
    assert full.status == half.status == "ok"
    assert half.outputs[0].dtype == np.float32
    assert sqnr_db(full.outputs[0], half.outputs[0]) > 35
    ratio = (tmp_path / "m16.onnx").stat().st_size / (tmp_path / "m32.onnx").stat().st_size
    assert ratio <= 0.52
    assert len(full.latencies_ms) == 3 and full.median_ms > 0 and full.p90_ms >= full.median_ms
    assert 20 < full.peak_rss_mb < 2000


def test_a_crashing_runtime_is_a_failed_row_not_an_exception(tmp_path):
    model = mlp()
    emit_fp32(model, tmp_path / "m.onnx")
    feeds = random_feeds(specs_from_ir(model), 2, 0)
    crash = _measure(tmp_path / "m.onnx", feeds, opener="tests.backends.crashing_runtime:open_session")
    assert crash.status == "failed" and crash.error == "crashed (SIGSEGV)"
    broken = _measure(tmp_path / "missing.onnx", feeds)
    assert broken.status == "failed" and "NoSuchFile" in broken.error or "No such file" in broken.error


def test_missing_cuda_is_a_skipped_row(tmp_path):
    model = mlp()
    emit_fp32(model, tmp_path / "m.onnx")
    feeds = random_feeds(specs_from_ir(model), 2, 0)
    import onnxruntime

    result = _measure(tmp_path / "m.onnx", feeds, RunSettings(device="cuda", threads=1, runs=1))
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert result.status == "ok"
    else:
        assert result.status == "skipped" and "CUDAExecutionProvider" in result.error


def test_registry_has_the_onnx_float_targets():
    targets = all_targets()
    assert targets["onnx-fp32"].available and targets["onnx-fp16"].parity_floor_db < targets["onnx-fp32"].parity_floor_db


def test_fp16_of_a_gain_shared_by_two_layer_norms_is_a_valid_file(tmp_path):
    """Exporters deduplicate equal weights; the fp16 converter then casts the shared one per use."""
    import onnx
    import onnxruntime as ort

    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 8] x) => (float[N, 8] y) <float[8] gain = {1,1,1,1,1,1,1,1}, float[8] bias = {0,0,0,0,0,0,0,0}> {
            a = LayerNormalization<axis=-1>(x, gain, bias)
            b = Relu(a)
            y = LayerNormalization<axis=-1>(b, gain, bias)
        }
    """)
    emit_fp16(model, tmp_path / "m16.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m16.onnx")), full_check=True)
    feeds = random_feeds(specs_from_ir(model), 4, 0)
    (want,) = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, feeds)
    (got,) = ort.InferenceSession(str(tmp_path / "m16.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert sqnr_db(want, got) > 30

"""The command line through click's CliRunner, one real subprocess, and every bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qconvert.cli import main

FIXTURE_FACTORY = Path(__file__).parents[1] / "fixtures" / "tiny_torch.py"


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def only_line(result) -> str:
    """The error is exactly one line on stderr and no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_targets_lists_availability():
    result = run_cli("targets", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["onnx-fp32"]["available"] and rows["onnx-fp16"]["runtime"] == "onnxruntime"


def test_inspect_shows_io_layout_ops_and_parameters(tiny_keras):
    result = run_cli("inspect", tiny_keras["h5"], "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["inputs"][0] == {"name": "image", "shape": [summary["inputs"][0]["shape"][0], 16, 16, 3],
                                    "dtype": "FLOAT", "layout": "NHWC"}
    assert summary["ops"]["Conv"] == 3 and "BatchNormalization" not in summary["ops"]
    # conv 3·3·3·8 + 8 (its BatchNorm folded in), conv 3·3·8·8, 1×1 conv 16, Resize scales 4;
    # tf2onnx drops the still-zero biases of the two untrained convs.
    assert summary["parameters"] == (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 8) + 16 + 4


def test_convert_json_result(tiny_torch, tmp_path):
    out = tmp_path / "out"
    result = run_cli(tiny_torch["pt"], "--to", "onnx-fp32,onnx-fp16", "--input-shape", "1,3,16,16",
                     "-o", out, "--json", "--runs", "3", "--threads", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["target"]: r for r in data["rows"]}
    assert rows["source"]["status"] == "ok" and rows["source"]["latency_ms"] > 0
    assert rows["onnx-fp32"]["sqnr_db"] == "inf" or rows["onnx-fp32"]["sqnr_db"] > 60
    assert rows["onnx-fp16"]["sqnr_db"] > 35
    assert rows["onnx-fp32"]["top1_agreement"] == 1.0
    assert rows["onnx-fp16"]["size_mb"] < 0.75 * rows["onnx-fp32"]["size_mb"]
    assert sorted(p.name for p in out.iterdir()) == ["packaging", "report.html", "report.json", "tiny.fp16.onnx",
                                                     "tiny.fp16.onnx.io.json", "tiny.fp32.onnx", "tiny.fp32.onnx.io.json"]


def test_real_subprocess_prints_the_table(tiny_keras, tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "qconvert", str(tiny_keras["h5"]), "--to", "onnx-fp32", "-o", str(tmp_path),
         "--runs", "3"], capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert "onnx-fp32" in process.stdout and "SQNR dB" in process.stdout
    assert process.stderr.strip() == ""  # no framework chatter


@pytest.mark.parametrize(
    "make_args,code,message",
    [
        (lambda f, d: ["/nonexistent/model.pt", "--to", "onnx-fp32"], 2, "no such file: /nonexistent/model.pt"),
        (lambda f, d: [d / "model.txt", "--to", "onnx-fp32"], 2, "unknown model format '.txt'"),
        (lambda f, d: [d / "trunc.h5", "--to", "onnx-fp32"], 1, "truncated"),
        (lambda f, d: [d / "trunc.onnx", "--to", "onnx-fp32"], 1, "cannot read ONNX file"),
        (lambda f, d: [d / "trunc.pt", "--to", "onnx-fp32", "--input-shape", "1,3,16,16"], 1,
         "is not a PyTorch archive"),
        (lambda f, d: [f["pt"], "--to", "onnx-fp99", "--input-shape", "1,3,16,16"], 2,
         "unknown target onnx-fp99; valid targets: onnx-fp32, onnx-fp16"),
        (lambda f, d: [f["pt"], "--to", "onnx-fp32"], 2, "does not record its input shapes; pass --input-shape"),
        (lambda f, d: [f"{FIXTURE_FACTORY}:build", "--to", "onnx-fp32", "--input-shape", "1,3,16,16"], 2,
         "pass --trust-code"),
        (lambda f, d: [f"{FIXTURE_FACTORY}:build_unexportable", "--trust-code", "--to", "onnx-fp32",
                       "--input-shape", "1,4,4"], 1, "failed at op aten._linalg_svd (node _linalg_svd)"),
        (lambda f, d: [f["weights"], "--to", "onnx-fp32", "--input-shape", "1,3,16,16"], 1,
         "not TorchScript; give the model as file.py:factory with --weights"),
        (lambda f, d: [f["pt"], "--to", "onnx-fp32", "--input-shape", "1,3,16,16", "-o", d / "afile" / "out"], 2,
         "cannot write to output folder"),
        (lambda f, d: [f["pt"], "--to", "onnx-fp32", "--input-shape", "1,3,16,16", "--engine", "qnnpack"], 2,
         "--engine qnnpack applies to torch-int8 and torch-dynamic; none was asked for"),
    ],
    ids=["missing", "unknown-ext", "trunc-h5", "trunc-onnx", "trunc-pt", "unknown-target", "no-shape",
         "untrusted-code", "export-fails", "state-dict-as-pt", "unwritable-out", "engine-without-torch-int8"],
)
def test_bad_input(tiny_torch, tiny_keras, tmp_path, make_args, code, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.txt").write_text("not a model")
    (bad / "afile").write_text("")
    (bad / "trunc.h5").write_bytes(tiny_keras["h5"].read_bytes()[:3000])
    (bad / "trunc.pt").write_bytes(tiny_torch["pt"].read_bytes()[:5000])
    onnx_bytes = (tiny_torch["dir"] / "tiny.pt").read_bytes()  # any binary that is not ONNX
    (bad / "trunc.onnx").write_bytes(onnx_bytes[:2000])
    out = tmp_path / "out"
    args = make_args(tiny_torch, bad)
    if "-o" not in args:
        args += ["-o", out]
    result = run_cli(*args)
    assert result.exit_code == code, result.output
    assert message in only_line(result)
    assert not out.exists() or list(out.iterdir()) == []  # nothing half-written


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("/nonexistent/model.pt", "--to", "onnx-fp32", "--debug")
    assert result.exit_code != 0 and result.exception is not None


def test_sensitivity_without_calibration_data_is_one_line(tiny_torch, tmp_path):
    result = run_cli("sensitivity", tiny_torch["pt"], "--input-shape", "1,3,16,16", "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "qconvert sensitivity needs calibration data: pass --calib" in only_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["model.onnx", "--to", "onnx-fp32", "--runs", "0"], "Invalid value for '--runs'"),
    (["model.onnx", "--to", "onnx-fp32", "--bogus"], "No such option '--bogus'"),
    (["sensitivity"], "Missing argument 'MODEL'"),
])
def test_click_usage_errors_are_one_line_too(args, expected):
    result = run_cli(*args)
    assert result.exit_code == 2
    line = only_line(result)
    assert line.startswith("qconvert: error: ") and expected in line and "--help`)" in line

"""The CLI's option groups build the frozen option objects the pipeline reads (no model is loaded here)."""

import pytest
from click.testing import CliRunner

from qconvert.backends.targets import EmitOptions
from qconvert.cli import main
from qconvert.pipeline.options import (CalibrationOptions, ConvertOptions, EvalOptions, MeasureOptions,
                                       MixedPrecisionOptions, SourceOptions)
from qconvert.quant.config import make_config
from qconvert.quant.data import ImageOptions
from qconvert.report.result import ConversionResult


@pytest.fixture
def seen(monkeypatch) -> dict:
    """What `qconvert MODEL ...` hands the pipeline, which does nothing."""
    calls = {}

    def convert(model, names, options, *, out_dir, progress):
        calls.update(model=model, names=names, options=options, out_dir=out_dir)
        return ConversionResult(model, "torch", "torchscript", str(out_dir), "cpu", 1, 1, 1)

    monkeypatch.setattr("qconvert.pipeline.convert.convert", convert)
    return calls


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_no_flags_give_the_api_defaults(seen):
    assert run("m.pt", "--to", "onnx-fp32", "--json").exit_code == 0
    assert seen["options"] == ConvertOptions() and seen["names"] == ["onnx-fp32"]
    assert seen["out_dir"] == "qconvert-out"


def test_each_flag_lands_in_its_group(seen):
    result = run("m.pt", "--to", "onnx-qdq, torch-int8", "-o", "out", "--json", "--device", "cuda", "--threads", "3",
                 "--batch", "4", "--samples", "5", "--runs", "6", "--io-layout", "nhwc", "--engine", "qnnpack",
                 "--calib", "c.npz", "--calib-samples", "7", "--calib-scale", "0.5", "--calib-mean", "0.5,0.25",
                 "--calib-std", "2", "--calibrate", "minmax", "--weight-granularity", "per-tensor",
                 "--activations", "symmetric", "--activation-type", "uint8", "--max-drop", "0.5",
                 "--eval", "e.npz", "--metric", "dice", "--input-shape", "1,3,8,8", "--input-shape", "b=2",
                 "--weights", "w.pt", "--trust-code")
    assert result.exit_code == 0, result.output
    assert seen["names"] == ["onnx-qdq", "torch-int8"] and seen["out_dir"] == "out"
    assert seen["options"] == ConvertOptions(
        source=SourceOptions(("1,3,8,8", "b=2"), "w.pt", True),
        measure=MeasureOptions("cuda", 3, 4, 5, 6),
        calibration=CalibrationOptions("c.npz", 7, ImageOptions(0.5, (0.5, 0.25), (2.0,))),
        evaluation=EvalOptions("e.npz", "dice"),
        quant=make_config("minmax", "per-tensor", "symmetric", "uint8"),
        mixed=MixedPrecisionOptions(0.5),
        emit=EmitOptions(io_layout="nhwc", torch_engine="qnnpack"),
    )


@pytest.mark.parametrize("args,code,message", [
    (["--calibrate", "bogus"], 2, "qconvert: error: unknown calibration method 'bogus'"),
    (["--calib-mean", "a"], 1,
     "qconvert: error: ValueError: could not convert string to float: 'a' (rerun with --debug)"),
])
def test_a_bad_group_value_is_one_line_before_any_work(seen, args, code, message):
    result = run("m.pt", "--to", "onnx-qdq", "--calib", "c.npz", *args)
    assert result.exit_code == code and not seen
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(message)


def test_random_calibration_warns_before_a_quantization_error(seen):
    result = run("m.pt", "--to", "onnx-qdq", "--calib", "random", "--calibrate", "percentile:12")
    assert result.exit_code == 2
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == ["warning", "error"]


def test_debug_raises_a_bad_group_value(seen):
    result = run("m.pt", "--to", "onnx-qdq", "--calib", "c.npz", "--calibrate", "bogus", "--debug")
    assert result.exit_code == 1 and "unknown calibration method" in str(result.exception)

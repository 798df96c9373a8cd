"""Calibration data: every accepted form, and bad data as a clear one-line error before any work."""

import numpy as np
import pytest
from click.testing import CliRunner

from qconvert.cli import main
from qconvert.converters.input_spec import InputSpec
from qconvert.errors import UsageError
from qconvert.quant.data import ImageOptions, RandomCalibrationWarning, load_calibration, load_eval

SPECS = [InputSpec("x", (None, 3, 8, 8), "float32")]


def good(n=4):
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(np.float32)


def test_npz_keyed_by_input_name_and_sample_limit(tmp_path):
    np.savez(tmp_path / "c.npz", x=good(10), labels=np.zeros(10))
    feeds = load_calibration(str(tmp_path / "c.npz"), SPECS, samples=6)
    assert feeds["x"].shape == (6, 3, 8, 8)


def test_single_array_serves_a_single_input(tmp_path):
    np.save(tmp_path / "c.npy", good().astype(np.float64))  # float64 is cast
    feeds = load_calibration(str(tmp_path / "c.npy"), SPECS)
    assert feeds["x"].dtype == np.float32


@pytest.mark.parametrize("array, message", [
    (good()[:, :, :4], "axis 2 differs"),
    (good()[0], "4-D"),
    (good().astype(np.int32), "is int32; the model takes float32"),
    (np.where(np.arange(4 * 3 * 64).reshape(4, 3, 8, 8) == 5, np.nan, good()), "1 NaN/Inf"),
    (np.full((4, 3, 8, 8), np.inf, np.float32), "NaN/Inf"),
    (np.zeros((0, 3, 8, 8), np.float32), "no samples"),
])
def test_bad_arrays_are_clear_errors(tmp_path, array, message):
    np.save(tmp_path / "c.npy", array)
    with pytest.raises(UsageError, match=message):
        load_calibration(str(tmp_path / "c.npy"), SPECS)


def test_missing_input_names_the_keys(tmp_path):
    specs = SPECS + [InputSpec("mask", (None, 8), "float32")]
    np.savez(tmp_path / "c.npz", x=good(), other=good())
    with pytest.raises(UsageError, match="no array for input mask"):
        load_calibration(str(tmp_path / "c.npz"), specs)


def test_missing_path_and_untrusted_code(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_calibration(str(tmp_path / "none.npz"), SPECS)
    (tmp_path / "gen.py").write_text("def feeds():\n    return []\n")
    with pytest.raises(UsageError, match="--trust-code"):
        load_calibration(f"{tmp_path / 'gen.py'}:feeds", SPECS)


def test_python_function_yielding_single_samples(tmp_path):
    (tmp_path / "gen.py").write_text(
        "import numpy as np\n"
        "def feeds():\n"
        "    for i in range(5):\n"
        "        yield {'x': np.full((3, 8, 8), i, np.float32)}\n")
    feeds = load_calibration(f"{tmp_path / 'gen.py'}:feeds", SPECS, trust_code=True)
    assert feeds["x"].shape == (5, 3, 8, 8) and feeds["x"][4].max() == 4


def test_image_folder_resized_scaled_normalised(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 51 * i, np.uint8)).save(tmp_path / f"{i}.png")
    feeds = load_calibration(str(tmp_path), SPECS, image=ImageOptions(mean=(0.5,), std=(0.5,)))
    assert feeds["x"].shape == (3, 3, 8, 8)
    np.testing.assert_allclose(feeds["x"][:, 0, 0, 0], [-1.0, -0.6, -0.2], atol=1e-6)


def test_random_is_explicit_and_warns():
    with pytest.warns(RandomCalibrationWarning):
        feeds = load_calibration("random", SPECS, samples=3)
    assert feeds["x"].shape == (3, 3, 8, 8)


def test_eval_needs_labels_one_per_sample(tmp_path):
    np.savez(tmp_path / "e.npz", x=good())
    with pytest.raises(UsageError, match="no 'labels'"):
        load_eval(str(tmp_path / "e.npz"), SPECS)
    np.savez(tmp_path / "e.npz", x=good(), labels=np.zeros(3))
    with pytest.raises(UsageError, match="3 labels for 4 samples"):
        load_eval(str(tmp_path / "e.npz"), SPECS)


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_cli_static_target_without_calib_says_what_to_pass(tiny_onnx, tmp_path):
    result = CliRunner().invoke(main, [str(tiny_onnx), "--to", "onnx-qdq", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "needs calibration data: pass --calib" in _one_line(result)
    assert not (tmp_path / "out").exists()  # no work done


def test_cli_bad_calibration_data_fails_before_any_artifact(tiny_onnx, tmp_path):
    np.save(tmp_path / "bad.npy", np.full((4, 3, 16, 16), np.nan, np.float32))
    result = CliRunner().invoke(main, [str(tiny_onnx), "--to", "onnx-fp32,onnx-qdq", "--calib",
                                       str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "NaN/Inf" in _one_line(result)
    assert not list((tmp_path / "out").glob("*.onnx"))


def test_cli_unknown_calibration_method(tiny_onnx, tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 16, 16), np.float32))
    result = CliRunner().invoke(main, [str(tiny_onnx), "--to", "onnx-qdq", "--calib", str(tmp_path / "c.npy"),
                                       "--calibrate", "kmeans"])
    assert result.exit_code == 2 and "unknown calibration method 'kmeans'" in _one_line(result)


def test_cli_sensitivity_on_random_calibration_warns_and_lists_layers(tiny_onnx, tmp_path):
    import json

    result = CliRunner().invoke(main, ["sensitivity", str(tiny_onnx), "--calib", "random", "--json",
                                       "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "qconvert: warning: calibrating on random data" in _one_line(result)
    layers = json.loads(result.stdout)["layers"]
    assert sorted(layer["op"] for layer in layers) == ["Conv", "Conv", "Gemm"]
    assert (tmp_path / "sensitivity.json").is_file()


def test_cli_max_drop_needs_eval(tiny_onnx, tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 16, 16), np.float32))
    result = CliRunner().invoke(main, [str(tiny_onnx), "--to", "onnx-qdq", "--calib", str(tmp_path / "c.npy"),
                                       "--max-drop", "0.5", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--max-drop needs" in _one_line(result)

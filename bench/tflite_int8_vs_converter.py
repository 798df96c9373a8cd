"""Part of `make bench`: tflite-uint8 lowered from the IR's QDQ next to the TFLite converter's own
full-integer post-training quantization of the Keras UNet (from_keras_model + a representative dataset
of the same calibration samples, uint8 inputs/outputs), measured alternately in child processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.alternating import ROUNDS, best_median_and_dice
from qconvert.api import convert
from qconvert.backends.tflite.quantized import file_io_contract
from qconvert.quant.config import QuantConfig, make_config

WORK = Path("build/bench/tflite_int8_vs_converter")
CALIB_SAMPLES = 256  # qconvert's default --calib-samples: both quantizers see the same samples


def write_converter_ptq(h5: Path, calib: np.ndarray, out_path: Path) -> Path:
    """TFLiteConverter.from_keras_model, full integer (TFLITE_BUILTINS_INT8), uint8 I/O."""
    from qconvert.converters.keras_source import load_keras_model
    from qconvert.quiet_imports import import_tensorflow

    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(load_keras_model(str(h5), {"trust_code": False}))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(converter.convert())
    return out_path


def section(models: Path, threads: int | None, runs: int) -> str:
    h5, calib_path, eval_path = models / "unet.h5", models / "unet_calib.npz", models / "unet_eval.npz"
    result = convert(str(h5), ["tflite-fp32", "tflite-uint8"], out_dir=WORK, threads=threads, runs=runs,
                     calib=str(calib_path), calib_samples=CALIB_SAMPLES, eval_path=str(eval_path))
    ours = Path(result.row("tflite-uint8").path)
    # The converter calibrates with min/max: qconvert with --calibrate minmax is the like-for-like row,
    # the default (percentile:99.99) the one users get.
    minmax = convert(str(h5), ["tflite-uint8"], out_dir=WORK / "minmax", threads=threads, runs=runs,
                     calib=str(calib_path), calib_samples=CALIB_SAMPLES, quant=make_config("minmax"))
    ours_minmax = Path(minmax.row("tflite-uint8").path)
    default = QuantConfig().method_label
    with np.load(calib_path) as data:
        calib = data[data.files[0]][:CALIB_SAMPLES].astype(np.float32)
    theirs = write_converter_ptq(h5, calib, WORK / "unet.converter-ptq-uint8.tflite")
    files = {
        "qconvert tflite-fp32": (Path(result.row("tflite-fp32").path), {}),
        f"qconvert tflite-uint8 (the IR's QDQ, default {default})": (ours, _contract(ours)),
        "qconvert tflite-uint8 (the IR's QDQ, --calibrate minmax)": (ours_minmax, _contract(ours_minmax)),
        "converter PTQ uint8 (from_keras_model)": (theirs, {"io": file_io_contract(theirs.read_bytes())}),
    }

    best, dice = best_median_and_dice(files, eval_path, result.threads, runs)
    baseline = best["converter PTQ uint8 (from_keras_model)"]
    float_ms = best["qconvert tflite-fp32"]
    lines = ["## tflite-uint8 from the IR's QDQ vs the TFLite converter's own full-integer PTQ (Keras UNet)", "",
             f"Both quantize with the same {CALIB_SAMPLES} samples of unet_calib.npz (ours: qconvert's ranges, "
             f"the default {default} or minmax, written as fake-quant ops; theirs: the representative "
             f"dataset through the converter's min/max calibrator). uint8 inputs/outputs, "
             f"{result.threads} threads, batch 1, {ROUNDS} alternating rounds of {runs} runs each; best median "
             "per file. Dice on unet_eval.npz.", "",
             "| file | median ms | / converter PTQ | / tflite-fp32 | size MB | Dice |", "|---|---|---|---|---|---|"]
    for name, (path, _) in files.items():
        lines.append(f"| {name} | {best[name]:.3f} | {best[name] / baseline:.2f} | {best[name] / float_ms:.2f} | "
                     f"{path.stat().st_size / 1e6:.3f} | {dice[name]:.5f} |")
    counts = {name: _op_counts(path) for name, (path, _) in files.items() if "default" in name or "PTQ" in name}
    lines += [""] + [f"- {name}: {counts[name]}" for name in counts]
    return "\n".join(lines) + "\n"


def _contract(artifact: Path) -> dict:
    return {"io": json.loads(Path(f"{artifact}.io.json").read_text())}


def _op_counts(path: Path) -> str:
    from collections import Counter

    from qconvert.backends.tflite.quantized import inspect_flatbuffer

    ops = Counter(op["op"] for op in inspect_flatbuffer(path.read_bytes())["ops"])
    return ", ".join(f"{op} ×{count}" for op, count in ops.most_common())


if __name__ == "__main__":  # python -m bench.tflite_int8_vs_converter [models] [threads] [runs]
    import sys

    args = sys.argv[1:]
    print(section(Path(args[0] if args else "build/models"), int(args[1]) if len(args) > 1 else None,
                  int(args[2]) if len(args) > 2 else 50))

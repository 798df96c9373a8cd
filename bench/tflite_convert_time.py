"""TFLite conversion time: the program's frozen function (qconvert's path, emit.converter_for) against the
converter's default for a function with its module, a SavedModel written and read back.

    python -m bench.tflite_convert_time [--models build/models] [--rounds 5] [--out bench/TFLITE_CONVERT.md]

Each reference model's float IR (after qconvert's cleanup) becomes one TensorFlow program; the two paths then
convert it in turns, `--rounds` times each, in one process, for tflite-fp32 and for tflite-int8 (the QDQ IR
of the model's own calibration set). Both files are checked to hold the same ops, inputs and outputs and,
for fp32, the same outputs on an evaluation sample. Medians of the converter call and restore_io.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

import numpy as np

SOURCES = {"unet": "unet.h5", "vgg": "vgg.pt2", "resnet": "resnet.pt2", "mobilenet": "mobilenet.pt2"}


def _programs(models: Path, name: str):
    """(float program, int8 program) of one reference model, the int8 one from its calibration set."""
    from qconvert.backends.targets import EmitOptions
    from qconvert.backends.tflite.int8_lowering import lower_for_tflite
    from qconvert.backends.tflite.program import build_program
    from qconvert.converters import load_source
    from qconvert.ir.inputs import specs_from_ir
    from qconvert.passes import cleanup
    from qconvert.passes.pipelines import prepare_for_tflite
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.config import QuantConfig
    from qconvert.quant.data import load_calibration
    from qconvert.quant.static import quantize_with_ranges

    graph = cleanup(load_source(str(models / SOURCES[name])).ir)
    float_program = build_program(prepare_for_tflite(graph), EmitOptions().io_layout, "tflite-fp32")
    config = QuantConfig()
    calib = load_calibration(str(models / f"{name}_calib.npz"), specs_from_ir(graph), samples=64)
    qdq = quantize_with_ranges(graph, calibrate(graph, calib, config), config)
    int8_program = build_program(lower_for_tflite(qdq), EmitOptions().io_layout, "tflite-int8")
    return float_program, int8_program


def _convert(program, mode: str, frozen: bool) -> tuple[bytes, float]:
    from qconvert.backends.tflite import quantized
    from qconvert.backends.tflite.emit import configure, converter_for
    from qconvert.backends.tflite.signature import restore_io

    began = time.perf_counter()
    converter = converter_for(program)
    converter.experimental_lower_to_saved_model = not frozen
    if mode == "fp32":
        configure(converter, "fp32")
    else:
        quantized.configure(converter, "int8")
    flatbuffer = restore_io(converter.convert(), program.inputs, program.outputs)
    return flatbuffer, time.perf_counter() - began


def _inspect(flatbuffer: bytes, feeds=None):
    """(ops, (inputs, outputs), output values on `feeds` or None) of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    io = ([(d["name"], d["shape"].tolist(), str(d["dtype"])) for d in interpreter.get_input_details()],
          [(d["name"], d["shape"].tolist(), str(d["dtype"])) for d in interpreter.get_output_details()])
    values = None
    if feeds is not None:
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], feeds[: detail["shape"][0]])
        interpreter.invoke()
        values = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return ops, io, values


def main() -> None:
    from bench.machine import describe
    from qconvert.quiet_imports import import_tensorflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="bench/TFLITE_CONVERT.md")
    options = parser.parse_args()
    import_tensorflow()
    began = time.perf_counter()
    models, rows = Path(options.models), []
    for name in SOURCES:
        programs = dict(zip(("fp32", "int8"), _programs(models, name)))
        for mode, program in programs.items():
            times: dict[bool, list[float]] = {True: [], False: []}
            files: dict[bool, bytes] = {}
            for round_ in range(options.rounds):
                for frozen in ((True, False) if round_ % 2 else (False, True)):
                    files[frozen], seconds = _convert(program, mode, frozen)
                    times[frozen].append(seconds)
            feeds = None
            if mode == "fp32":
                with np.load(models / f"{name}_eval.npz") as data:
                    feeds = next(data[key] for key in data.files if key != "labels")[:1]
            frozen_file, saved_file = _inspect(files[True], feeds), _inspect(files[False], feeds)
            same = frozen_file[:2] == saved_file[:2] and (
                feeds is None or all(np.array_equal(a, b) for a, b in zip(frozen_file[2], saved_file[2])))
            rows.append((name, mode, statistics.median(times[False]), statistics.median(times[True]),
                         len(files[False]), len(files[True]), same))
            print(rows[-1], flush=True)
    lines = [
        "# TFLite conversion: frozen function against a SavedModel round trip", "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {describe()}",
        f"- command: `python -m bench.tflite_convert_time --models {options.models} --rounds {options.rounds}`; "
        f"{time.perf_counter() - began:.0f} s",
        "",
        "The same TensorFlow program of each reference model converted both ways, in turns, one process; seconds "
        "are medians of the converter call plus restore_io. 'same' checks ops, inputs and outputs (names, shapes, "
        "dtypes) and, for fp32, identical outputs on an evaluation sample.",
        "",
        "| model | mode | SavedModel s | frozen s | frozen / SavedModel | SavedModel bytes | frozen bytes | same |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, mode, saved, frozen, saved_bytes, frozen_bytes, same in rows:
        lines.append(f"| {name} | {mode} | {saved:.2f} | {frozen:.2f} | {frozen / saved:.2f} | {saved_bytes:,} | "
                     f"{frozen_bytes:,} | {'yes' if same else 'NO'} |")
    Path(options.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()

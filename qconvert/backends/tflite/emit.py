"""IR -> TensorFlow program -> .tflite through TFLiteConverter, in float32, float16 or dynamic-range form."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from qconvert.backends.targets import EmitOptions

QUANTIZATION_MODES = ("fp32", "fp16", "dynamic")


def convert(model: ir.Model, mode: str, options: EmitOptions, target: str) -> tuple[bytes, dict]:
    """The .tflite bytes and the artifact's facts (its inputs' and outputs' names and layouts)."""
    from qconvert.quiet_imports import import_tensorflow

    tf = import_tensorflow()
    from qconvert.backends.tflite.program import build_program
    from qconvert.backends.tflite.signature import restore_io

    from qconvert.passes.pipelines import prepare_for_tflite

    program = build_program(prepare_for_tflite(model), options.io_layout, target)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([program.function], program.module)
    configure(converter, mode)
    flatbuffer = restore_io(converter.convert(), program.inputs, program.outputs)
    return flatbuffer, program.facts()


def configure(converter, mode: str) -> None:
    """The converter settings of each mode (shared with the Keras baseline for a fair comparison)."""
    from qconvert.quiet_imports import import_tensorflow

    tf = import_tensorflow()
    # Builtin kernels only: an op that would need the TF (Flex) runtime is a conversion error.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        # DEFAULT without a representative dataset: int8 weights, float activations.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode != "fp32":
        raise ValueError(f"unknown TFLite mode {mode!r}; one of {QUANTIZATION_MODES}")


def emitter(mode: str, target: str, make=None):
    """The Target.emit of one converter mode; `make(model, mode, options, target) -> (bytes, facts)`
    defaults to the float path (the integer targets pass qconvert.backends.tflite.quantized.convert)."""
    make = make or convert

    def emit(model: ir.Model, path: Path, options: EmitOptions | None = None) -> dict:
        flatbuffer, facts = make(model, mode, options or EmitOptions(), target)
        Path(path).write_bytes(flatbuffer)
        return facts

    emit.__name__ = f"emit_{mode}"
    return emit

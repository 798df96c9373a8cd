"""IR -> TensorFlow program -> .tflite through TFLiteConverter, in float32, float16 or dynamic-range form; with
TFLite's sparse weight encoding where pruned weights make the file smaller (sparse.py)."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from qconvert.backends.targets import EmitOptions

QUANTIZATION_MODES = ("fp32", "fp16", "dynamic")


def convert(model: ir.Model, mode: str, options: EmitOptions, target: str) -> tuple[bytes, dict]:
    """The .tflite bytes and the artifact's facts (its inputs' and outputs' names and layouts)."""
    from qconvert.quiet_imports import import_tensorflow

    import_tensorflow()  # quietly, before program.py imports it
    from qconvert.backends.tflite.program import build_program
    from qconvert.backends.tflite.signature import restore_io
    from qconvert.backends.tflite.sparse import smaller_encoding
    from qconvert.passes.pipelines import prepare_for_tflite

    program = build_program(prepare_for_tflite(model), options.io_layout, target)

    def convert_once(sparse: bool) -> bytes:
        converter = converter_for(program)
        configure(converter, mode, sparse)
        return restore_io(converter.convert(), program.inputs, program.outputs)

    flatbuffer, sparse_encoding = smaller_encoding(model, convert_once)
    facts = program.facts()
    if sparse_encoding is not None:
        facts["quantization"] = {"sparse_encoding": sparse_encoding}
    return flatbuffer, facts


def converter_for(program):
    """A TFLiteConverter of the program's frozen function. Not through a SavedModel written and read back
    (the converter's default for a function with its module): the same ops, about twice as fast; the file
    then has no signature until signature.restore_io gives it one."""
    from qconvert.quiet_imports import import_tensorflow

    converter = import_tensorflow().lite.TFLiteConverter.from_concrete_functions([program.function], program.module)
    converter.experimental_lower_to_saved_model = False
    return converter


def configure(converter, mode: str, sparse: bool = False) -> None:
    """The converter settings of each mode (shared with the Keras baseline for a fair comparison);
    `sparse`: weights with zeros in TFLite's sparse encoding too."""
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
    if sparse:
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]


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

"""ONNX sources: the file is the IR as it is (checked by the ONNX checker)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from qconvert.converters.input_spec import InputSpec, pin_input_shapes
from qconvert.converters.probe import choose_example_shapes
from qconvert.converters.source import Source
from qconvert.errors import SourceLoadError, UsageError
from qconvert.ir.metadata import get_meta, set_meta
from qconvert.ir.serialize import load_ir


def load(path: str, *, input_specs: list[InputSpec], weights: str | None, trust_code: bool) -> Source:
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    if weights:
        raise UsageError("--weights applies to file.py:factory sources; an .onnx file carries its weights")
    model = load_ir(path)
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as error:
        raise SourceLoadError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0]}") from error
    if get_meta(model, "source_framework") is None:
        set_meta(model, "source_framework", "onnx")
    pin_input_shapes(model, input_specs, path)
    choose_example_shapes(model, path)
    return Source(path, "onnx", "onnx", model, os.path.getsize(path), {})

"""Load and clean: the model file becomes the cleaned float IR that every later stage starts from."""

from __future__ import annotations

import time

import onnx_ir as ir

from qconvert.backends.targets import IRVariant
from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.source import Source
from qconvert.pipeline.options import SourceOptions
from qconvert.pipeline.state import ConversionState


def load_model(model: str, options: SourceOptions) -> Source:
    """The model exported to the IR, checked against its own framework (qconvert.converters)."""
    return load_source(model, input_specs=parse_input_shapes(list(options.input_shapes)), weights=options.weights,
                       trust_code=options.trust_code)


def clean(source: Source) -> ir.Model:
    """The float IR the targets are emitted from (qconvert.passes.cleanup)."""
    from qconvert.passes import cleanup

    return cleanup(source.ir)


def load(state: ConversionState) -> None:
    state.notify("load", "source")
    began = time.perf_counter()
    state.source = load_model(state.model, state.options.source)
    state.variants[IRVariant.FLOAT] = clean(state.source)
    state.load_s = time.perf_counter() - began

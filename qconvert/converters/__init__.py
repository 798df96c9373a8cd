"""Source adapters: a model file in, the IR out (checked against the source framework)."""

from __future__ import annotations

from pathlib import Path

from qconvert.converters.input_spec import InputSpec
from qconvert.converters.source import Source
from qconvert.converters.user_code import is_factory_spec
from qconvert.errors import UsageError

# suffix -> adapter module (imported lazily: torch and tensorflow are slow to import)
ADAPTERS = {
    ".pt": "torch_source",
    ".pth": "torch_source",
    ".pt2": "torch_source",
    ".h5": "keras_source",
    ".keras": "keras_source",
    ".onnx": "onnx_source",
}


def adapter_for(path: str) -> str:
    if is_factory_spec(path):
        return "torch_source"
    suffix = Path(path).suffix.lower()
    if suffix not in ADAPTERS:
        if not Path(path).exists():
            raise UsageError(f"no such file: {path}")
        raise UsageError(
            f"unknown model format {suffix or '(no extension)'!r} for {path}; qconvert reads "
            f"{', '.join(sorted(ADAPTERS))} files and file.py:factory"
        )
    return ADAPTERS[suffix]


def load_source(
    path: str,
    *,
    input_specs: list[InputSpec] | None = None,
    weights: str | None = None,
    trust_code: bool = False,
) -> Source:
    import importlib

    module = importlib.import_module(f"qconvert.converters.{adapter_for(path)}")
    return module.load(str(path), input_specs=input_specs or [], weights=weights, trust_code=trust_code)


__all__ = ["InputSpec", "Source", "load_source", "adapter_for"]

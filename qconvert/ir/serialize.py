"""Save and reload the IR as a plain .onnx file (metadata included), written atomically."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir

from qconvert.errors import SourceLoadError
from qconvert.fileio import atomic_path


def save_ir(model: ir.Model, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        ir.save(model, tmp)
    return path


def load_ir(path: str | Path) -> ir.Model:
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # protobuf raises several unrelated types for a damaged file
        raise SourceLoadError(
            f"cannot read ONNX file {path}: {type(error).__name__}: {error}; "
            "the file is truncated or not an ONNX model, export it again"
        ) from error
    return ir.serde.deserialize_model(proto)

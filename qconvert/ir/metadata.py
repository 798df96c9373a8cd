"""What conversions need and ONNX lacks, kept as JSON values in the model's metadata_props.

Keys live under the ``qconvert.`` prefix so they survive a save/load round trip and show in Netron.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import onnx_ir as ir

PREFIX = "qconvert."


class Layout(str, Enum):
    NCHW = "NCHW"
    NHWC = "NHWC"
    NONE = "-"  # not an image tensor


def set_meta(model: ir.Model, key: str, value: Any) -> None:
    model.metadata_props[PREFIX + key] = json.dumps(value)


def get_meta(model: ir.Model, key: str, default: Any = None) -> Any:
    raw = model.metadata_props.get(PREFIX + key)
    return default if raw is None else json.loads(raw)


def input_layouts(model: ir.Model) -> dict[str, str]:
    """Layout per graph input; inputs without a record are 4-D NCHW (the ONNX convention) or '-'."""
    recorded = get_meta(model, "input_layouts", {})
    layouts = {}
    for value in model.graph.inputs:
        rank = len(value.shape) if value.shape is not None else 0
        default = Layout.NCHW.value if rank == 4 else Layout.NONE.value
        layouts[value.name] = recorded.get(value.name, default)
    return layouts

"""What `qconvert inspect` shows: inputs/outputs with shapes and layout, op histogram, parameters, size."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir

from qconvert.ir.metadata import get_meta, input_layouts


def _shape(value: ir.Value) -> list:
    return [d if isinstance(d, int) else str(d) for d in (value.shape or [])]


def summarize(model: ir.Model) -> dict:
    layouts = input_layouts(model)
    initializers = model.graph.initializers.values()
    # Parameters are the floating-point constants; integer ones are shapes and indices.
    parameters = sum(
        int(np.prod(v.shape.dims)) for v in initializers if v.shape is not None and v.dtype.is_floating_point()
    )
    size = sum(v.const_value.nbytes for v in initializers if v.const_value is not None)
    ops = Counter(node.op_type for node in model.graph.all_nodes())
    return {
        "framework": get_meta(model, "source_framework"),
        "format": get_meta(model, "source_format"),
        "opset": model.opset_imports.get("", None),
        "inputs": [{"name": v.name, "shape": _shape(v), "dtype": v.dtype.name if v.dtype else None,
                    "layout": layouts[v.name]} for v in model.graph.inputs],
        "outputs": [{"name": v.name, "shape": _shape(v), "dtype": v.dtype.name if v.dtype else None}
                    for v in model.graph.outputs],
        "parameters": parameters,
        "weights_mb": size / 1e6,
        "nodes": sum(ops.values()),
        "ops": dict(ops.most_common()),
    }

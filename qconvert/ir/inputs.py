"""Read the IR's inputs as InputSpecs and make deterministic random feeds for them."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.converters.input_spec import InputSpec
from qconvert.ir.metadata import get_meta

_IR_TO_NUMPY = {
    ir.DataType.FLOAT: "float32",
    ir.DataType.FLOAT16: "float16",
    ir.DataType.INT64: "int64",
    ir.DataType.INT32: "int32",
    ir.DataType.UINT8: "uint8",
    ir.DataType.INT8: "int8",
    ir.DataType.BOOL: "bool",
}


def _embedding_size(value: ir.Value) -> int | None:
    """If an integer input indexes a table (Gather data[indices]), the table's row count."""
    sizes = []
    for node, index in value.uses():
        if node.op_type == "Gather" and index == 1 and node.attributes.get_int("axis", 0) == 0:
            table = node.inputs[0]
            if table is not None and table.shape is not None and isinstance(table.shape[0], int):
                sizes.append(table.shape[0])
        elif node.op_type in ("Cast", "Identity", "Unsqueeze", "Reshape", "Flatten") and index == 0:
            inner = _embedding_size(node.outputs[0])
            if inner:
                sizes.append(inner)
    return min(sizes) if sizes else None


def specs_from_ir(model: ir.Model) -> list[InputSpec]:
    examples = get_meta(model, "example_shapes", {})
    specs = []
    for value in model.graph.inputs:
        dtype = _IR_TO_NUMPY.get(value.dtype, "float32")
        shape = tuple(d if isinstance(d, int) else None for d in (value.shape or ()))
        int_range = None
        if dtype in ("int64", "int32"):
            size = _embedding_size(value)
            int_range = (0, size) if size else (0, 2)
        example = examples.get(value.name)
        specs.append(InputSpec(value.name, shape, dtype, int_range, tuple(example) if example else None))
    return specs


def random_feeds(specs: list[InputSpec], batch: int, seed: int) -> dict[str, np.ndarray]:
    """Standard-normal floats, uniform integers in the input's valid range. A dynamic first dim gets
    `batch`, any other dynamic dim the input's example size (probed when the source was read); static
    dims stay."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple(d if d is not None else batch if i == 0 else (spec.example[i] if spec.example else 1)
                      for i, d in enumerate(spec.shape))
        if spec.dtype in ("int64", "int32", "int8", "uint8"):
            low, high = spec.int_range or (0, 2)
            feeds[spec.name] = rng.integers(low, high, size=shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds

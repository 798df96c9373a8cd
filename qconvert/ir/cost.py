"""What an IR costs: float parameters, and multiply-accumulates per sample of its weighted layers."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def parameter_count(model: ir.Model) -> int:
    """Elements of every floating-point initializer (integer ones are shapes and indices)."""
    total = 0
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is not None and np.issubdtype(tensor.dtype.numpy(), np.floating):
            total += int(np.prod(tensor.shape.numpy(), dtype=np.int64))
    return total


def macs_per_sample(model: ir.Model) -> int:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul for one sample (axis 0 is the batch).
    A layer whose other dims are not known before run time is not counted."""
    return sum(_macs(node) for node in model.graph)


def _macs(node: ir.Node) -> int:
    if node.domain not in ("", "ai.onnx") or len(node.inputs) < 2 or node.inputs[1] is None:
        return 0
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    if node.op_type == "Conv":  # each output element reads C_in/group x kernel inputs
        return _per_sample(out) * _size(w.shape, 1)
    if node.op_type == "ConvTranspose":  # each input element scatters into C_out/group x kernel outputs
        return _per_sample(x) * _size(w.shape, 1)
    if node.op_type in ("Gemm", "MatMul"):
        if x.shape is None or not x.shape or not isinstance(x.shape[-1], int):
            return 0
        reduced = x.shape[0] if node.op_type == "Gemm" and node.attributes.get_int("transA", 0) else x.shape[-1]
        return _per_sample(out) * reduced if isinstance(reduced, int) else 0
    return 0


def _per_sample(value: ir.Value) -> int:
    if value.shape is None or len(value.shape) < 1:
        return 0
    dims = list(value.shape.dims)[1:]
    return int(np.prod(dims, dtype=np.int64)) if all(isinstance(d, int) for d in dims) else 0


def _size(shape: ir.Shape | None, start: int) -> int:
    if shape is None:
        return 0
    dims = list(shape.dims)[start:]
    return int(np.prod(dims, dtype=np.int64)) if all(isinstance(d, int) for d in dims) else 0

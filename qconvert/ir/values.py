"""Small building blocks for passes and lowerings: constant values, new initializers, model copies."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant data (an initializer or a Constant node's output), else None. An initializer
    that is also a graph input is not constant: the caller can override it at run time."""
    if value is None or value.is_graph_input():
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def add_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """A new initializer holding `array`; `name` gets trailing underscores until it is free."""
    while name in graph.initializers:
        name += "_"
    value = ir.Value(name=name, const_value=ir.tensor(array, name=name),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)), shape=ir.Shape(array.shape))
    graph.register_initializer(value)
    return value


def copy_model(model: ir.Model) -> ir.Model:
    """A deep copy, for work that must leave the caller's model as it is (with the fold factors that
    pruning ranks by, qconvert/ir/fold_factors.py, which a file does not hold)."""
    copied = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    fold_factors.carry(model.graph, copied.graph)
    return copied

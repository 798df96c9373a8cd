"""Fill in the shapes that ONNX's data propagation can derive and the constant folder could not."""

from __future__ import annotations

import onnx
import onnx_ir as ir

# onnx-ir's own bridge to the ONNX C API: it leaves big initializers out of the serialized copy.
from onnx_ir.passes.common._c_api_utils import call_onnx_api


class InferShapes(ir.passes.InPlacePass):
    """ONNX shape inference with data propagation, merged dim by dim into the recorded shapes.

    Exporters compute shapes from the dynamic batch (``Concat(Shape(x)[0], [144, -1]) -> Reshape``). The
    constant folder keeps such a shape vector a run-time value, and node-by-node inference then knows
    the result's rank but none of its dims, so every later value loses them too, channel counts included
    (TFLite cannot lower a Conv2D whose input channels are unknown). ONNX's data propagation follows
    the vector element by element and gives ``[batch, 144, 1600]``.

    A Reshape's ``-1`` next to the batch is left unknown by ONNX (it does not cancel ``batch`` against
    ``batch``); `reshape_wildcard` does, and inference runs again from there, a few rounds at most.

    The merge only adds knowledge: a dim the IR already fixes stays, a dim only inference fixes is
    taken, and inference's invented names (``unk__N``) are not.
    """

    rounds = 4

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for _ in range(self.rounds):
            changed = self._infer(model)
            changed = _resolve_reshape_wildcards(model) or changed
            modified = modified or changed
            if not changed:
                break
        return ir.passes.PassResult(model, modified=modified)

    @staticmethod
    def _infer(model: ir.Model) -> bool:
        def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
            return onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)

        try:
            inferred = ir.serde.deserialize_model(call_onnx_api(infer, model))
        except Exception:  # inference is an aid: a model it cannot read keeps the shapes it has
            return False
        modified = False
        for graph, inferred_graph in zip(model.graphs(), inferred.graphs()):
            found = ir.convenience.create_value_mapping(inferred_graph)
            inputs = set(graph.inputs)
            for name, value in ir.convenience.create_value_mapping(graph).items():
                other = found.get(name)
                if other is None or value in inputs or value.is_initializer():
                    continue
                merged = merge_shapes(value.shape, other.shape)
                if merged is not None and merged != value.shape:
                    value.shape = merged
                    modified = True
                if value.dtype is None and other.dtype is not None:
                    value.dtype = other.dtype
                    modified = True
        return modified


def _resolve_reshape_wildcards(model: ir.Model) -> bool:
    modified = False
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        source, result = node.inputs[0], node.outputs[0]
        if source is None or source.shape is None or result.shape is None:
            continue
        size = reshape_wildcard(source.shape, result.shape)
        if size is not None:
            result.shape = ir.Shape([size if not (isinstance(d, int) or _named(d)) else d for d in result.shape])
            modified = True
    return modified


def reshape_wildcard(source: ir.Shape, result: ir.Shape) -> int | None:
    """The one unknown dim of a Reshape's result, where the input's element count is known up to the same
    named dims the result has (``[batch, 144, 40, 40] -> [batch, 144, ?]`` gives 1600); else None."""
    unknown = [d for d in result if not (isinstance(d, int) or _named(d))]
    if len(unknown) != 1 or not all(isinstance(d, int) or _named(d) for d in source):
        return None
    symbols_in = sorted(d.value for d in source if not isinstance(d, int))
    symbols_out = sorted(d.value for d in result if _named(d))
    if symbols_in != symbols_out:
        return None
    count_in = _product(d for d in source if isinstance(d, int))
    count_out = _product(d for d in result if isinstance(d, int))
    if count_out == 0 or count_in % count_out:
        return None
    return count_in // count_out


def _product(dims) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


def _named(dim) -> bool:
    return isinstance(dim, ir.SymbolicDim) and dim.value is not None and not dim.value.startswith("unk__")


def merge_shapes(recorded: ir.Shape | None, inferred: ir.Shape | None) -> ir.Shape | None:
    """Per dim: the recorded int, else the inferred int, else a real symbolic name, else unknown. A rank
    that disagrees keeps the recorded shape."""
    if inferred is None:
        return recorded
    if recorded is None:
        return ir.Shape([d if isinstance(d, int) or _named(d) else None for d in inferred])
    if len(recorded) != len(inferred):
        return recorded
    dims = []
    for mine, theirs in zip(recorded, inferred):
        if isinstance(mine, int):
            dims.append(mine)
        elif isinstance(theirs, int):
            dims.append(theirs)
        elif _named(mine):
            dims.append(mine)
        elif _named(theirs):
            dims.append(theirs)
        else:
            dims.append(None)
    return ir.Shape(dims)

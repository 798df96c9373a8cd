"""Fold computations on constants (and on static shapes) into initializers."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import LiftConstantsToInitializersPass
from onnxscript.optimizer import fold_constants

# onnxscript's defaults, in elements.
DEFAULT_INPUT_SIZE_LIMIT = 8192
DEFAULT_OUTPUT_SIZE_LIMIT = 512 * 512


class FoldConstants(ir.passes.InPlacePass):
    """Evaluate nodes whose inputs are all constants; store the results as initializers.

    Shape arithmetic folds as far as the shapes are static, so the batch dimension
    stays dynamic. With ``x: float[N, 3, 4, 4]``, before::

        s = Shape(x)
        n = Gather<axis=0>(s, [0])      # depends on N: kept
        c = Gather<axis=0>(s, [1])      # 3
        f = Mul(c, [16])                # 48
        shape = Concat<axis=0>(n, f)
        y = Reshape(x, shape)

    After::

        s = Shape(x)
        n = Gather<axis=0>(s, [0])
        shape = Concat<axis=0>(n, f)    # f is now the initializer [48]
        y = Reshape(x, shape)

    Remaining ``Constant`` nodes become initializers. Nodes left without consumers are
    not removed here (``RemoveDeadNodes`` does that). Wraps onnxscript's constant folder.

    Keyword options:
        input_size_limit: do not evaluate a node that has a constant input with more
            elements than this (keeps folding fast, leaves e.g. big weight math alone).
        output_size_limit: do not store a result with more elements than this, unless it
            replaces inputs at least as big (e.g. a Transpose of a weight used once);
            keeps the model from growing.
    """

    def __init__(
        self,
        *,
        input_size_limit: int = DEFAULT_INPUT_SIZE_LIMIT,
        output_size_limit: int = DEFAULT_OUTPUT_SIZE_LIMIT,
    ):
        super().__init__()
        self.input_size_limit = input_size_limit
        self.output_size_limit = output_size_limit

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        recorded = _forget_intermediate_shapes(model)
        folded = fold_constants(
            model,
            # Re-derives each node's output shape from its inputs as it goes, which is
            # what lets Shape() fold where dims are static.
            onnx_shape_inference=True,
            input_size_limit=self.input_size_limit,
            output_size_limit=self.output_size_limit,
        )
        # Where ONNX could not infer a shape (custom ops), keep the recorded one.
        for value, shape in recorded.items():
            if value.shape is None:
                value.shape = shape
        lifted = LiftConstantsToInitializersPass(
            # The lift raises on sparse_value Constants; leave those (rare) as nodes.
            lift_all_constants=not _has_sparse_constant(model),
            size_limit=0,
        )(model)
        return ir.passes.PassResult(model, modified=folded.modified or lifted.modified)


def _forget_intermediate_shapes(model: ir.Model) -> dict[ir.Value, ir.Shape]:
    """Drop the recorded shapes of values produced inside the graph; return them.

    Exporters may record shapes traced with batch 1 (value_info) even when the input
    is declared ``[N, ...]``; the folder prefers such a static dim and would bake the
    batch size into a constant. Shapes re-inferred from the graph inputs keep N
    symbolic. Graph outputs keep their declared shape.
    """
    recorded = {}
    for graph in model.graphs():
        for node in graph:
            for value in node.outputs:
                if value.shape is not None and not value.is_graph_output():
                    recorded[value] = value.shape
                    value.shape = None
    return recorded


def _has_sparse_constant(model: ir.Model) -> bool:
    return any(
        node.op_type == "Constant" and "sparse_value" in node.attributes
        for node in ir.traversal.RecursiveGraphIterator(model.graph)
    )

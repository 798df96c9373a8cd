"""Remove nodes, initializers, optional outputs and functions that nothing uses."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedFunctionsPass, RemoveUnusedNodesPass


class RemoveDeadNodes(ir.passes.InPlacePass):
    """Dead-code elimination; graph inputs and outputs are never removed.

    Before::

        graph (x) => (y) {
            y = Relu(x)
            dead = Neg(x)          # no consumer, not an output
        }
        initializer w              # no consumer

    After::

        graph (x) => (y) {
            y = Relu(x)
        }

    Also drops unused optional outputs (e.g. an inference BatchNormalization's
    running-mean outputs) and functions no node calls. Wraps onnx-ir's
    ``RemoveUnusedNodesPass`` and ``RemoveUnusedFunctionsPass``.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        arity = _arity(model)
        nodes = RemoveUnusedNodesPass()(model)
        # Functions last: removing nodes may leave a function without callers.
        functions = RemoveUnusedFunctionsPass()(model)
        # onnx-ir does not count the outputs and trailing empty inputs it trims.
        modified = nodes.modified or functions.modified or _arity(model) != arity
        return ir.passes.PassResult(model, modified=modified)


def _arity(model: ir.Model) -> int:
    return sum(
        len(node.inputs) + len(node.outputs)
        for graph_like in [model.graph, *model.functions.values()]
        for node in ir.traversal.RecursiveGraphIterator(graph_like)
    )

"""Remove Identity nodes without renaming any graph input or output."""

from __future__ import annotations

import logging

import onnx_ir as ir

logger = logging.getLogger(__name__)


class RemoveIdentity(ir.passes.InPlacePass):
    """Remove ``y = Identity(x)`` nodes, in the main graph, subgraphs and functions.

    Before::

        x = Relu(a)
        y = Identity(x)
        z = Add(y, b)

    After::

        x = Relu(a)
        z = Add(x, b)

    When ``y`` is a graph output, ``x`` takes the name ``y`` instead, so the model's
    signature is unchanged. The node is kept (the pass does not fire) when that rename
    would change another name the outside sees, or would not be valid ONNX:

    - ``x`` is a graph input or an initializer (a graph output may not alias them),
    - ``x`` is itself a graph output (renaming it would lose its name),
    - ``x`` comes from an outer graph (a subgraph output must be produced inside it).

    onnx-ir's ``IdentityEliminationPass`` covers the first case only; its rename of a value
    that is already a graph output drops that output's name, hence this pass.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        graph_likes = [model.graph, *model.functions.values()]
        for graph_like in graph_likes:
            for node in ir.traversal.RecursiveGraphIterator(graph_like):
                modified |= _try_remove(node)
        return ir.passes.PassResult(model, modified=modified)


def _try_remove(node: ir.Node) -> bool:
    if node.op_type != "Identity" or node.domain not in ("", "onnx.ai"):
        return False
    if len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] is None:
        return False
    x, y = node.inputs[0], node.outputs[0]
    graph = node.graph
    assert graph is not None

    y_is_output = y.is_graph_output()
    if y_is_output:
        producer = x.producer()
        if producer is None or producer.graph is not graph:
            return False  # graph input, initializer or outer-scope value
        if x.is_graph_output():
            return False
        # x becomes the graph output: it must carry the declared type and shape.
        x.type = y.type or x.type
        x.shape = y.shape or x.shape
    else:
        # Keep whatever the Identity knew that its input did not.
        x.type = x.type or y.type
        x.shape = x.shape or y.shape

    ir.convenience.replace_all_uses_with(y, x, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    if y_is_output:
        x.name = y.name  # after the removal, so that two values never share the name
    logger.debug("removed Identity %s", node.name)
    return True

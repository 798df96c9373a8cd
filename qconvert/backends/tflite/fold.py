"""Nodes whose inputs are all constants are evaluated at emit time with ONNX's reference evaluator.

What the cleanup passes left as computation on constants (shape arithmetic, weight reshapes) then reaches
emitters as NumPy values, which is what Reshape, Slice, Resize and friends need to know their shapes.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

# Folding these would bake run-time randomness or huge tensors into the file.
NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli", "Dropout"}
MAX_FOLDED_ELEMENTS = 1 << 24


def try_fold(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """The node's outputs, or None when it cannot (or should not) be evaluated here."""
    has_subgraph = any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
                       for a in node.attributes.values())
    if node.op_type in NEVER_FOLD or has_subgraph or not node.outputs:
        return None
    from onnx.reference import ReferenceEvaluator

    proto = ir.serde.serialize_node(node)
    names = [value.name if value is not None else "" for value in node.inputs]
    feeds = {name: array for name, array in zip(names, arrays) if name}
    try:
        results = ReferenceEvaluator(proto, opsets={"": opset}).run(None, feeds)
    except Exception:  # the op has no reference kernel or rejects these inputs: emit it instead
        return None
    results = [np.asarray(r) for r in results]
    if any(r.size > MAX_FOLDED_ELEMENTS for r in results):
        return None
    return results

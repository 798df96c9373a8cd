"""Merge the MatMuls by constant weights that read one activation (attention's Q, K, V) into one MatMul
and a Split: torch-dynamic's dynamic int8 Linear then quantizes that activation once per call instead
of once per projection.

Before (W_i float32 constants [K, N_i]; biases as FuseMatMulBias leaves them, on some or none)::

    q = MatMul(x, Wq, bq)
    k = MatMul(x, Wk)
    v = MatMul(x, Wv, bv)

After::

    qkv = MatMul(x, concat(Wq, Wk, Wv, axis=1), concat(bq, 0, bv))   # named after the first member
    q, k, v = Split<axis=-1>(qkv, [N_q, N_k, N_v])

The merged node takes the first member's place (every member reads only x and constants) and its name,
which the emitted Linear module is named after; the members keep their order in x's consumers. A single
MatMul by a constant is left as it is.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.backends.torch.passes.fuse_matmul_bias import float_matrix
from qconvert.ir.values import add_initializer
from qconvert.passes.rewrite import replace_value

logger = logging.getLogger(__name__)


class MergeSharedInputMatMuls(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        names = {v.name for graph in model.graphs() for node in graph for v in node.outputs if v is not None}
        modified = False
        for graph in model.graphs():
            for node in list(graph):
                if node.graph is not graph or _weight(node) is None:
                    continue  # merged into an earlier member's MatMul already
                group = [node] + [user for user in node.inputs[0].consumers() if user is not node and
                                  user.inputs[0] is node.inputs[0] and _weight(user) is not None and
                                  _weight(user).shape[0] == _weight(node).shape[0]]
                if len(group) > 1:
                    _merge(graph, group, opset, names)
                    modified = True
        return ir.passes.PassResult(model, modified=modified)


def _weight(node: ir.Node) -> np.ndarray | None:
    """The [K, N] weight of a MatMul by a float32 constant (with or without a bias input), else None."""
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) not in (2, 3):
        return None
    return float_matrix(node.inputs[1])


def _bias(node: ir.Node) -> np.ndarray | None:
    value = node.inputs[2] if len(node.inputs) > 2 else None
    return value.const_value.numpy() if value is not None and value.const_value is not None else None


def _merge(graph: ir.Graph, group: list[ir.Node], opset: int, names: set[str]) -> None:
    first = group[0]
    weights = [_weight(member) for member in group]
    biases = [_bias(member) for member in group]
    sizes = [w.shape[1] for w in weights]
    inputs = [first.inputs[0], add_initializer(graph, f"{first.inputs[1].name}_merged", np.concatenate(weights, 1))]
    if any(b is not None for b in biases):
        bias = np.concatenate([b if b is not None else np.zeros(n, np.float32) for b, n in zip(biases, sizes)])
        inputs.append(add_initializer(graph, f"{first.inputs[1].name}_merged_bias", bias))
    merged = ir.Node("", "MatMul", inputs, name=first.name)
    merged.outputs[0].name = _fresh(f"{first.outputs[0].name}_merged", names)
    attributes = [ir.AttrInt64("axis", -1)]
    split_inputs = [merged.outputs[0]]
    if opset >= 13:
        split_inputs.append(add_initializer(graph, f"{first.name or first.outputs[0].name}_split_sizes",
                                            np.asarray(sizes, np.int64)))
    else:
        attributes.append(ir.AttrInt64s("split", sizes))
    split = ir.Node("", "Split", split_inputs, attributes=attributes, num_outputs=len(group),
                    name=f"{first.name}_split" if first.name else None)
    for output in split.outputs:
        output.name = _fresh(f"{merged.outputs[0].name}_part", names)
    graph.insert_before(first, [merged, split])
    replaced = [value for member in group for value in member.inputs[1:]]
    for member, part in zip(group, split.outputs):
        replace_value(member.outputs[0], part)
        graph.remove(member, safe=True)
    for value in replaced:  # the members' own weights and biases, unless something else reads them
        if not value.uses() and not value.is_graph_input() and not value.is_graph_output() and \
                graph.initializers.get(value.name) is value:
            del graph.initializers[value.name]
    logger.debug("merged %s", ", ".join(member.name or member.outputs[0].name for member in group))


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name

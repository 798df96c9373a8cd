"""IR rewrites the TFLite emitter wants, made on a copy (other targets share the IR).

The erf form of GELU, ``x * 0.5 * (1 + erf(x / sqrt(2)))`` as torch exports it before opset 20,
becomes one Gelu node: TFLite has a GELU kernel but no ERF one.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir


def prepare_ir(model: ir.Model) -> ir.Model:
    copy = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    fuse_erf_gelu(copy)
    return copy


def _scalar(value: ir.Value | None) -> float | None:
    if value is None or value.const_value is None or value.const_value.size != 1:
        return None
    return float(np.asarray(value.const_value.numpy()).reshape(()))


def _single_consumer(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    return uses[0].node if len(uses) == 1 and not value.is_graph_output() else None



def _other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """The input of a binary node that is not ``value``."""
    a, b = node.inputs[0], node.inputs[1]
    return b if a is value else a if b is value else None


def _close(value: float | None, wanted: float) -> bool:
    return value is not None and abs(value - wanted) < 1e-4 * abs(wanted)


def _match(erf: ir.Node) -> tuple[ir.Value, ir.Value, list[ir.Node]] | None:
    """(x, gelu output, nodes to remove) when ``erf`` sits in an erf-GELU, else None."""
    scale = erf.inputs[0].producer()
    if scale is None or scale.op_type not in ("Div", "Mul"):
        return None
    factor = _scalar(scale.inputs[1])
    wanted = math.sqrt(2) if scale.op_type == "Div" else 1 / math.sqrt(2)
    if not _close(factor, wanted):
        return None
    x = scale.inputs[0]
    if _single_consumer(scale.outputs[0]) is not erf:
        return None
    add = _single_consumer(erf.outputs[0])
    if add is None or add.op_type != "Add" or not _close(_scalar(_other(add, erf.outputs[0])), 1.0):
        return None
    # Then two Muls in either order: by 0.5 and by x.
    first = _single_consumer(add.outputs[0])
    if first is None or first.op_type != "Mul":
        return None
    second = _single_consumer(first.outputs[0])
    if second is None or second.op_type != "Mul":
        return None
    first_other = _other(first, add.outputs[0])
    second_other = _other(second, first.outputs[0])
    if not ((_close(_scalar(first_other), 0.5) and second_other is x)
            or (first_other is x and _close(_scalar(second_other), 0.5))):
        return None
    return x, second.outputs[0], [scale, erf, add, first, second]


def fuse_erf_gelu(model: ir.Model) -> int:
    fused = 0
    for erf in [n for n in model.graph if n.op_type == "Erf"]:
        found = _match(erf)
        if found is None:
            continue
        x, output, nodes = found
        gelu = ir.node("Gelu", [x], attributes={"approximate": "none"}, name=erf.name or "gelu")
        model.graph.insert_before(nodes[0], gelu)
        ir.convenience.replace_all_uses_with(output, gelu.outputs[0], replace_graph_outputs=True)
        name = output.name
        output.name = f"{name}_unfused"
        gelu.outputs[0].name = name  # keeps graph output names
        model.graph.remove(list(reversed(nodes)), safe=True)
        fused += 1
    return fused

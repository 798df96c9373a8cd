"""Fuse the erf form of GELU, as exporters spell it out, into one ONNX Gelu (opset 20).

Before (any order of the two Mul)::

    d = Div(x, 1.4142135)        # or Mul(x, 0.70710677)
    e = Erf(d)
    a = Add(e, 1.0)
    y = Mul(x, Mul(a, 0.5))      # or Mul(Mul(x, a), 0.5), or Mul(Mul(x, 0.5), a)

After::

    y = Gelu(x)                  # approximate="none": the same function

Five elementwise passes over the tensor become one, in every runtime (onnxruntime, PyTorch and LiteRT
each have a GELU kernel). Gelu entered the default domain in opset 20; the model's opset is raised to 20
when it is lower, which changes no other op used here: opsets 19 and 20 only widened types and added
attributes with defaults that keep the old behaviour.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import constant_array
from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)

GELU_OPSET = 20


@dataclasses.dataclass
class Match:
    x: ir.Value
    nodes: list[ir.Node]  # the pattern's nodes, the last one producing the result
    graph: ir.Graph


class FuseGelu(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        result = rewrite_matches(model, match, check, rewrite, logger, "not fused")
        if result.modified and model.opset_imports.get("", 0) < GELU_OPSET:
            model.opset_imports[""] = GELU_OPSET
        return result


def _scalar(value: ir.Value | None) -> float | None:
    array = constant_array(value)
    if array is None or array.size != 1 or not np.issubdtype(array.dtype, np.floating):
        return None
    return float(array.reshape(()))


def _is(node: ir.Node | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


def _other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    others = [v for v in node.inputs if v is not value]
    return others[0] if len(node.inputs) == 2 and len(others) == 1 else None


def _only_user(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    return uses[0].node if len(uses) == 1 and not value.is_graph_output() else None


def _close(value: float | None, wanted: float) -> bool:
    return value is not None and math.isclose(value, wanted, rel_tol=1e-5)


def match(erf: ir.Node) -> Match | None:
    if not _is(erf, "Erf"):
        return None
    scaled = erf.inputs[0].producer()
    if _is(scaled, "Div") and _close(_scalar(scaled.inputs[1]), math.sqrt(2.0)):
        x = scaled.inputs[0]
    elif _is(scaled, "Mul") and len(scaled.inputs) == 2:
        constant = next((v for v in scaled.inputs if _close(_scalar(v), 1 / math.sqrt(2.0))), None)
        x = _other(scaled, constant) if constant is not None else None
    else:
        return None
    if x is None or _only_user(scaled.outputs[0]) is not erf:
        return None
    add = _only_user(erf.outputs[0])
    if not _is(add, "Add") or not _close(_scalar(_other(add, erf.outputs[0])), 1.0):
        return None
    first = _only_user(add.outputs[0])
    if not _is(first, "Mul"):
        return None
    factor = _other(first, add.outputs[0])
    if factor is None:
        return None
    half = factor.producer()
    if _is(half, "Mul") and _only_user(factor) is first and x in half.inputs and _close(_scalar(_other(half, x)), 0.5):
        return Match(x, [scaled, erf, add, half, first], erf.graph)  # (x * 0.5) * (1 + erf)
    second = _only_user(first.outputs[0])
    if not _is(second, "Mul"):
        return None
    other = _other(second, first.outputs[0])
    if _close(_scalar(factor), 0.5) and other is x:
        return Match(x, [scaled, erf, add, first, second], erf.graph)  # x * ((1 + erf) * 0.5)
    if factor is x and _close(_scalar(other), 0.5):
        return Match(x, [scaled, erf, add, first, second], erf.graph)  # (x * (1 + erf)) * 0.5
    return None


def check(m: Match) -> str | None:
    for node in m.nodes[:-1]:
        users = list(node.outputs[0].uses())
        if node.outputs[0].is_graph_output() or any(u.node not in m.nodes for u in users):
            return f"{node.op_type} {node.name}'s output is used outside the GELU"
    return None


def rewrite(m: Match) -> None:
    last = m.nodes[-1]
    gelu = ir.node("Gelu", [m.x], name=f"{last.name}_gelu" if last.name else None)
    m.graph.insert_after(last, gelu)
    replace_value(last.outputs[0], gelu.outputs[0])
    for node in reversed(m.nodes):
        m.graph.remove(node, safe=True)

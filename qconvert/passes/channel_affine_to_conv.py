"""A per-channel Mul/Add chain that could not fold into a Conv becomes one depthwise 1x1 Conv."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer
from qconvert.passes.fold_affine import ChannelAffine, match_affine
from qconvert.passes.rewrite import replace_value


class ChannelAffineToConv(ir.passes.InPlacePass):
    """Write ``x * s + b`` with per-channel constants as a depthwise 1x1 Conv, for static int8.

    What FoldChannelAffine leaves (a BatchNormalization after an Add or a Concat, or before a Conv
    that pads; Keras Normalization's offset before a padded first Conv) would otherwise be two
    requantizing int8 ops with a per-tensor quantized constant each. As one depthwise Conv it is one
    integer kernel in every runtime, with its scales as per-channel int8 weights and its offsets as the
    int32 bias. Before::

        m = Mul(x, s)            # s: [1, C, 1, 1] (or [C, 1, 1]), any chain of Mul/Add/Sub/Div
        y = Add(m, b)

    After::

        y = Conv<group=C, kernel_shape=[1, 1]>(x, s.reshape(C, 1, 1, 1), b.reshape(C))

    Only chains with at least one constant that differs between channels: a scalar Mul or Add
    (HardSwish's x + 3 and / 6) stays an elementwise op, quantized with its exact scalar constant.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.graph is None:
                continue  # already part of a converted chain
            chain = _chain_from(node)
            if chain and any(np.ptp(step.values) != 0 for step in chain):
                _to_conv(graph, chain)
                modified = True
        return ir.passes.PassResult(model, modified=modified)


def _chain_from(node: ir.Node) -> list[ChannelAffine]:
    """The affine steps starting at `node`, if `node` starts a chain (its input is no affine step's)."""
    first = match_affine(node)
    if first is None:
        return []
    producer = first.x.producer()
    if producer is not None and match_affine(producer) is not None and len(list(first.x.uses())) == 1:
        return []  # not the chain's first step
    chain = [first]
    while True:
        out = chain[-1].node.outputs[0]
        uses = list(out.uses())
        if len(uses) != 1 or out.is_graph_output():
            return chain
        following = match_affine(uses[0].node)
        if following is None or following.x is not out:
            return chain
        chain.append(following)


def _to_conv(graph: ir.Graph, chain: list[ChannelAffine]) -> None:
    x, channels = chain[0].x, len(chain[0].values)
    scale, offset = np.ones(channels), np.zeros(channels)
    for step in chain:  # (x·S + B)·s = x·(S·s) + B·s;  (x·S + B) + b = x·S + (B + b)
        if step.kind == "scale":
            scale, offset = scale * step.values, offset * step.values
        else:
            offset = offset + step.values
    spatial = len(x.shape) - 2
    last = chain[-1].node
    name = last.name or last.outputs[0].name
    weight = add_initializer(graph, f"{name}_depthwise_weight",
                             scale.reshape(channels, 1, *[1] * spatial).astype(np.float32))
    bias = add_initializer(graph, f"{name}_depthwise_bias", offset.astype(np.float32))
    conv = ir.node("Conv", [x, weight, bias], {"group": channels, "kernel_shape": [1] * spatial},
                   name=f"{name}_depthwise")
    conv.outputs[0].type, conv.outputs[0].shape = x.type, x.shape
    graph.insert_after(last, conv)
    replace_value(last.outputs[0], conv.outputs[0])
    for step in reversed(chain):
        graph.remove(step.node, safe=True)

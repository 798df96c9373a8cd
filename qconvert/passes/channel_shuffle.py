"""Write a channel shuffle (Reshape -> Transpose -> Reshape on the channel axis) as one Gather of channels.

ShuffleNet's shuffle splits C into (g, C/g), swaps the two and merges them back: a fixed permutation of
the channels. Spelled as 5-D reshapes around a transpose, a backend that carries images channels-last
has to move the data back to channels-first and again (ShuffleNetV2's tflite-fp32 had 62 TRANSPOSE
ops); as a Gather on axis 1 it is one channel gather in any layout. Before::

    r = Reshape(x, [N, g, C/g, H, W])          # x: [N, C, H, W]
    t = Transpose<perm=[0, 2, 1, 3, 4]>(r)
    y = Reshape(t, [N, C, H, W])

After::

    y = Gather<axis=1>(x, indices)              # indices[j * g + i] = i * C/g + j

Does not fire when C, H or W is not static, when the shapes are not those of a split/swap/merge of the
channel axis, or when an intermediate value has other consumers or is a graph output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer, constant_array
from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)


class ChannelShuffleToGather(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return rewrite_matches(model, match, why_not, rewrite, logger, "kept")


@dataclass
class Shuffle:
    split: ir.Node
    swap: ir.Node
    merge: ir.Node


def _only_consumer(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    return uses[0][0] if len(uses) == 1 and not value.is_graph_output() else None


def match(node: ir.Node) -> Shuffle | None:
    if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
        return None
    swap = _only_consumer(node.outputs[0])
    if swap is None or swap.op_type != "Transpose":
        return None
    merge = _only_consumer(swap.outputs[0])
    if merge is None or merge.op_type != "Reshape":
        return None
    return Shuffle(node, swap, merge)


def shape_vector(value: ir.Value) -> list[int | None] | None:
    """A 1-D shape's elements, None where one is computed at run time: a constant, or a Concat of constants
    and one-element run-time parts (an exporter's [batch, g, C/g, H, W] with the batch read from the input)."""
    array = constant_array(value)
    if array is not None:
        return [int(v) for v in array.reshape(-1)] if array.ndim == 1 else None
    producer = value.producer()
    if producer is None or producer.op_type != "Concat":
        return None
    elements: list[int | None] = []
    for part in producer.inputs:
        array = constant_array(part)
        if array is not None:
            elements += [int(v) for v in array.reshape(-1)]
        elif part is not None and part.shape is not None and list(part.shape) == [1]:
            elements.append(None)
        else:
            return None
    return elements


def _dims(value: ir.Value) -> list | None:
    return list(value.shape) if value.shape is not None else None


def why_not(found: Shuffle) -> str | None:
    x = found.split.inputs[0]
    dims = _dims(x)
    if dims is None or len(dims) != 4 or not all(isinstance(d, int) for d in dims[1:]):
        return "input is not [N, C, H, W] with static C, H, W"
    split, merge = shape_vector(found.split.inputs[1]), shape_vector(found.merge.inputs[1])
    if split is None or merge is None or len(split) != 5 or len(merge) != 4:
        return "shapes are not a 5-D split and a 4-D merge"
    channels, height, width = dims[1:]
    groups = split[1]
    if not groups or groups <= 1 or channels % groups or split[2:] != [channels // groups, height, width]:
        return "the first reshape does not split the channel axis"
    if merge[1:] != [channels, height, width]:
        return "the second reshape does not merge it back"
    # The batch is copied (0), inferred (-1), computed from the input at run time (None) or the input's own.
    if any(s[0] not in (0, -1, None) and s[0] != dims[0] for s in (split, merge)):
        return "a reshape changes the batch"
    if list(found.swap.attributes.get_ints("perm") or ()) != [0, 2, 1, 3, 4]:
        return "the transpose does not swap the two channel factors"
    # allowzero only changes what a 0 in the shape means (torch's exporter sets it on every view).
    if any(n.attributes.get_int("allowzero", 0) and 0 in v for n, v in ((found.split, split), (found.merge, merge))):
        return "allowzero reshapes with a zero in the shape"
    return None


def rewrite(found: Shuffle) -> None:
    x = found.split.inputs[0]
    channels, groups = x.shape[1], shape_vector(found.split.inputs[1])[1]
    indices = np.arange(channels).reshape(groups, channels // groups).T.reshape(-1).astype(np.int64)
    graph = found.merge.graph
    index_value = add_initializer(graph, f"{found.merge.name or 'shuffle'}_channels", indices)
    gather = ir.node("Gather", [x, index_value], {"axis": 1}, name=f"{found.merge.name or 'shuffle'}_gather")
    graph.insert_before(found.split, gather)
    replace_value(found.merge.outputs[0], gather.outputs[0])
    for node in (found.merge, found.swap, found.split):
        graph.remove(node, safe=True)

"""Structured channel pruning: whole filters removed, and every tensor that carries their channels shrinks."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from qconvert.errors import UsageError
from qconvert.ir import fold_factors
from qconvert.ir.channel_groups import ChannelGroups, Edit, EditKind, analyze
from qconvert.ir.cost import macs_per_sample, parameter_count
from qconvert.ir.values import add_initializer, constant_array, copy_model
from qconvert.passes.infer_shapes import InferShapes


class Importance(enum.Enum):
    """How a channel is ranked within its group (summed over the group's producers)."""

    L1 = "l1"  # the filter's sum of |w|
    L2 = "l2"  # the filter's Euclidean norm
    BN = "bn"  # |gamma| of a BatchNormalization on the channel (left in the graph, or recorded when folded)


@dataclass
class GroupPruning:
    name: str  # the group's first producer
    channels: int
    kept: int
    members: list[str] = field(default_factory=list)  # nodes that changed (or would have)
    frozen: str | None = None  # why the group was left alone


@dataclass
class ChannelPruning:
    params_before: int
    params_after: int
    macs_before: int  # per sample
    macs_after: int
    groups: list[GroupPruning]
    keep: dict[str, np.ndarray]  # tensor name -> which of its channels stay (the unpruned model's tensors)


class PruneChannels(ir.passes.FunctionalPass):
    """Remove the share `target` of the channels of every prunable channel group
    (qconvert.ir.channel_groups), the least important first.

    Before::

        y = Conv(x, W[64, 3, 3, 3], B[64])
        z = Relu(y)
        out = Conv(z, V[10, 64, 3, 3], C[10])           # a graph output: its channels stay

    After (target 0.5, the 32 filters of W with the smallest L1 norm removed)::

        y = Conv(x, W[32, 3, 3, 3], B[32])
        z = Relu(y)
        out = Conv(z, V[10, 32, 3, 3], C[10])

    Each group keeps ceil((1 - target) * channels) rounded up to a multiple of `multiple_of` (never more
    than it has, never none). Producers lose filters, consumers the weights that read them (a Gemm after a
    Flatten its H·W rows per channel); BatchNormalization, depthwise convs, per-channel constants, Concat,
    Split, Slice, Gather and Reshape follow. The result `report` holds parameters and MACs before and
    after and every group with its fate.
    """

    def __init__(self, *, target: float, importance: Importance = Importance.L1, multiple_of: int = 8,
                 channels: Mapping[str, int] | None = None):
        super().__init__()
        if not 0 <= target < 1:
            raise UsageError(f"channel pruning {target:g}: give the share of channels removed, from 0 up to "
                             f"(not including) 1")
        if multiple_of < 1:
            raise UsageError(f"channel pruning: multiple_of {multiple_of} must be 1 or more")
        self.target, self.importance, self.multiple_of = target, Importance(importance), multiple_of
        self.channels = dict(channels or {})
        self.report: ChannelPruning | None = None

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        pruned = copy_model(model)
        analysis = analyze(pruned.graph)
        scores, ranked = _scores(analysis, self.importance, pruned.graph)
        removed, groups = _choose(analysis, scores, ranked, self.target, self.multiple_of, self.channels)
        keep = {name: analysis.keep_mask(name, removed) for name in analysis.tracks}
        params, macs = parameter_count(model), macs_per_sample(model)
        if removed.any():
            _apply(pruned.graph, analysis, keep)
            InferShapes()(pruned)
        self.report = ChannelPruning(params, parameter_count(pruned), macs, macs_per_sample(pruned), groups, keep)
        return ir.passes.PassResult(pruned, modified=bool(removed.any()))


def prune_channels(model: ir.Model, target: float, importance: Importance = Importance.L1,
                   multiple_of: int = 8, channels: Mapping[str, int] | None = None
                   ) -> tuple[ir.Model, ChannelPruning]:
    """`model` with the share `target` of each prunable group's channels removed, as a new model (the
    input stays as it is), and what was removed. `channels`: the counts `target` is a share of, by group
    name (group_channels of the unpruned model, for one step of several: each step's kept counts are
    then rounded from the original counts, so K steps end where one does); default each group's own."""
    pass_ = PruneChannels(target=target, importance=importance, multiple_of=multiple_of, channels=channels)
    return pass_(model).model, pass_.report


def _scores(analysis: ChannelGroups, importance: Importance, graph: ir.Graph) -> tuple[np.ndarray, np.ndarray]:
    """Per unit id: its importance, and whether anything ranked it."""
    size = len(analysis.unit_of)
    scores, ranked = np.zeros(size), np.zeros(size, dtype=bool)
    if importance is Importance.BN:
        # BatchNorms left in the graph, and those folded into a producer whose gamma the fold recorded
        gammas = list(analysis.scales) + [
            (producer.output, gamma) for producer in analysis.producers
            if (gamma := fold_factors.gamma(graph, producer.node.inputs[1].name)) is not None]
        if not gammas:
            raise UsageError("--prune-importance bn: no BatchNormalization's gamma is known (none is left in the "
                             "graph, and none was recorded where one was folded: an ONNX or TorchScript file "
                             "folded them before qconvert); pass --prune-importance l1 or l2")
        for name, gamma in gammas:
            units = analysis.unit_of[analysis.tracks[name].ids]
            np.add.at(scores, units, np.abs(gamma.astype(np.float64)))
            ranked[units] = True
        return scores, ranked
    for producer in analysis.producers:
        weight = np.moveaxis(producer.weight.astype(np.float64), producer.axis, 0).reshape(
            producer.weight.shape[producer.axis], -1)
        norms = np.abs(weight).sum(1) if importance is Importance.L1 else np.sqrt((weight ** 2).sum(1))
        units = analysis.unit_of[analysis.tracks[producer.output].ids]
        np.add.at(scores, units, norms)
        ranked[units] = True
    return scores, ranked


def group_channels(model: ir.Model) -> dict[str, int]:
    """Each channel group's channel count, by group name (its first producer, which pruning keeps)."""
    return {group.name: len(group.units) for group in analyze(model.graph).groups}


def _choose(analysis: ChannelGroups, scores: np.ndarray, ranked: np.ndarray, target: float,
            multiple_of: int, channels: Mapping[str, int]) -> tuple[np.ndarray, list[GroupPruning]]:
    """Which unit ids go (a bool array), and each group's record."""
    removed = np.zeros(len(analysis.unit_of), dtype=bool)
    records = []
    for group in analysis.groups:
        units = np.array(group.units, dtype=np.int64)
        frozen = group.frozen
        if frozen is None and not ranked[units].all():
            frozen = "no BatchNormalization ranks its channels (--prune-importance bn)"
        kept = len(units)
        if frozen is None and target > 0:
            # rounded to 9 places first: 9 * (1 - 1/9) is 8, not 8.000000000000002 rounded up to 9
            base = channels.get(group.name, len(units))
            kept = min(len(units), math.ceil(round(base * (1 - target) / multiple_of, 9)) * multiple_of)
            order = np.argsort(scores[units], kind="stable")  # least important first, ties in channel order
            removed[units[order[:len(units) - kept]]] = True
        records.append(GroupPruning(group.name, len(units), kept, list(group.members), frozen))
    # Never a tensor without channels (a Split piece whose channels all ranked low): its best unit stays.
    for name, track in analysis.tracks.items():
        units = analysis.unit_of[track.ids]
        if len(units) and removed[units].all():
            best = units[np.argmax(scores[units])]
            removed[best] = False
            records[analysis.group_of[int(best)]].kept += 1
    return removed, records


def _apply(graph: ir.Graph, analysis: ChannelGroups, keep: dict[str, np.ndarray]) -> None:
    """Slice the constants, rewrite the counts and offsets, and shrink every tracked tensor's shape."""
    slices: dict[tuple[ir.Node, int], list[tuple[int, np.ndarray]]] = {}
    for edit in analysis.edits:
        mask = keep[edit.value]
        if mask.all():
            continue
        if edit.kind is EditKind.SLICE:
            slices.setdefault((edit.node, edit.index), []).append((edit.axis, np.repeat(mask, edit.repeat)))
        else:
            _REWRITE[edit.kind](graph, edit, mask, analysis)
    replaced = []
    for (node, index), cuts in slices.items():
        name = node.inputs[index].name
        array = constant_array(node.inputs[index])
        for axis, mask in cuts:
            array = np.compress(mask, array, axis=axis)
        replaced.append(_set_input(graph, node, index, array))
        for axis, mask in cuts:  # the fold factors follow their weight (now perhaps a new initializer)
            fold_factors.take(graph, name, mask, axis, node.inputs[index].name)
            name = node.inputs[index].name
    values = ir.convenience.create_value_mapping(graph)
    for name, track in analysis.tracks.items():
        value = values.get(name)
        if value is None or value.shape is None or keep[name].all():
            continue
        dims = list(value.shape.dims)
        dims[track.axis] = int(keep[name].sum()) * track.inner
        value.shape = ir.Shape(dims)
    for value in replaced:  # the unpruned constants nothing reads any more
        if value is not None and value.is_initializer() and not value.uses() and not value.is_graph_output():
            graph.initializers.pop(value.name)


def _set_input(graph: ir.Graph, node: ir.Node, index: int, array: np.ndarray) -> ir.Value | None:
    """Give `node` the constant `array` as input `index`: in place where only this node reads it (the
    name stays, so training's name map still holds), else as a new initializer. Returns the value
    replaced, if any."""
    value = node.inputs[index]
    if value.is_initializer() and len(value.uses()) == 1 and not value.is_graph_output():
        value.const_value = ir.tensor(array, name=value.name)
        value.shape = ir.Shape(array.shape)
        return None
    node.replace_input_with(index, add_initializer(graph, f"{value.name}_pruned", array))
    return value


def _int64(graph: ir.Graph, node: ir.Node, index: int, values) -> None:
    """A new int64 constant as input `index` (shape constants are often shared); the old one goes if unread."""
    old = node.inputs[index] if len(node.inputs) > index else None
    node.replace_input_with(index, add_initializer(graph, f"{node.name or node.outputs[0].name}_{index}_pruned",
                                                   np.asarray(values, dtype=np.int64)))
    if old is not None and old.is_initializer() and not old.uses() and not old.is_graph_output():
        graph.initializers.pop(old.name)


def _group(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    edit.node.attributes["group"] = ir.AttrInt64("group", int(mask.sum()))


def _split(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    node = edit.node
    sizes = [int(keep_mask.sum()) for keep_mask in _pieces(node, analysis, mask)]
    if node.attributes.get_ints("split", None) is not None:
        node.attributes["split"] = ir.AttrInt64s("split", sizes)
        return
    node.attributes.pop("num_outputs", None)  # opset 18's equal pieces are no longer equal
    if len(node.inputs) < 2:
        node.resize_inputs(2)
    _int64(graph, node, 1, sizes)


def _pieces(node: ir.Node, analysis: ChannelGroups, mask: np.ndarray) -> list[np.ndarray]:
    offsets = np.cumsum([0] + [len(analysis.tracks[out.name].ids) for out in node.outputs])
    return [mask[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _slice_range(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    node = edit.node
    starts, ends = constant_array(node.inputs[1]).copy(), constant_array(node.inputs[2]).copy()
    start, end, _ = slice(int(starts[edit.index]), int(ends[edit.index])).indices(len(mask))
    starts[edit.index], ends[edit.index] = int(mask[:start].sum()), int(mask[:max(start, end)].sum())
    _int64(graph, node, 1, starts)
    _int64(graph, node, 2, ends)


def _gather(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    node = edit.node
    indices = constant_array(node.inputs[1]).astype(np.int64) % len(mask)
    position = np.cumsum(mask) - 1  # each kept channel's index after pruning
    _int64(graph, node, 1, position[indices[mask[indices]]])


def _reshape(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    node = edit.node
    shape = constant_array(node.inputs[1]).copy()
    if shape[edit.index] != -1:  # the one inferred dim follows by itself
        shape[edit.index] = int(mask.sum()) * analysis.tracks[edit.value].inner
    _int64(graph, node, 1, shape)


def _resize(graph: ir.Graph, edit: Edit, mask: np.ndarray, analysis: ChannelGroups) -> None:
    node = edit.node
    sizes = constant_array(node.inputs[3]).copy()
    sizes[edit.index] = int(mask.sum())
    _int64(graph, node, 3, sizes)


_REWRITE = {EditKind.GROUP: _group, EditKind.SPLIT: _split, EditKind.SLICE_RANGE: _slice_range,
            EditKind.GATHER: _gather, EditKind.RESHAPE: _reshape, EditKind.RESIZE: _resize}

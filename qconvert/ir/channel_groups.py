"""Channel groups: which channels of which tensors must be removed together, and what changes when they go.

Structured pruning removes a channel from every tensor that carries it: the filter that produces it, the
weights of every layer that reads it, the per-channel constants in between. The analysis walks the IR in
graph order and gives every channel that a producer (Conv, ConvTranspose, Gemm, MatMul with a constant
weight) creates an id. Ops that keep channels apart pass the ids on: activations, pooling, Resize, Pad,
BatchNormalization, depthwise convs, per-channel Mul/Add by constants, Transpose, Flatten/Reshape into a
Gemm (each channel then spans H·W rows, `Track.inner`). Concat lays its inputs' ids end to end and
Split/Slice/Gather take them apart again. Add and Mul of two activations compute channel i from channel i
of each input, so their ids are united (a union-find: ResNet's residual stream becomes one unit per
channel across every block that adds to it).

A *unit* is one set of united ids: removing it removes one channel from each tensor that carries it. A
*group* is the units of producers that are tied together (all of one Conv's output channels, and what an
Add unites with them); pruning ranks the units of a group against each other. Anything else on the
channel axis (a Reshape that splits it, a grouped Conv, LayerNormalization over it, a graph output) is a
barrier: the groups it touches are frozen, with a one-line reason.

`Edit`s record what each node needs when channels go (a constant sliced along an axis, an attribute or
shape that spells a channel count); the pruning pass (qconvert.passes.prune_channels) applies them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from qconvert.ir.union_find import UnionFind
from qconvert.ir.values import constant_array

PRODUCERS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
ELEMENTWISE = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu",
    "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Softplus", "Softsign", "Mish", "ThresholdedRelu",
    "Clip", "Cast", "Identity", "Dropout", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where",
})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
REDUCTIONS = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1",
                        "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"})
AXIS_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "LpNormalization"})  # across one axis


@dataclass
class Track:
    """A tensor's channels: the axis they lie on and each channel's id; each channel spans `inner`
    consecutive positions of that axis (1, or H·W after a Flatten of [N, C, H, W])."""

    axis: int
    ids: np.ndarray  # int64, one per channel
    inner: int = 1


class EditKind(enum.Enum):
    SLICE = "slice"  # a constant input loses the removed channels along `axis`
    GROUP = "group"  # a depthwise conv's group attribute is the kept channel count
    SPLIT = "split"  # Split sizes: the kept channels of each piece
    SLICE_RANGE = "slice_range"  # Slice starts/ends on the channel axis, counted in kept channels
    GATHER = "gather"  # Gather indices on the channel axis, renumbered
    RESHAPE = "reshape"  # one entry of a constant Reshape shape
    RESIZE = "resize"  # one entry of a constant Resize sizes


@dataclass(frozen=True)
class Edit:
    kind: EditKind
    node: ir.Node
    value: str  # the tensor whose kept channels decide the edit
    index: int = 0  # SLICE: which input; SLICE_RANGE: which entry of axes; RESHAPE/RESIZE: which entry
    axis: int = 0  # SLICE: the constant's axis
    repeat: int = 1  # SLICE: positions per channel along that axis (Flatten -> Gemm)


@dataclass
class Producer:
    node: ir.Node
    output: str
    weight: np.ndarray
    axis: int  # the weight's output-channel axis


@dataclass
class ChannelGroup:
    name: str  # the first producer's node name
    units: list[int]  # unit ids (union-find roots), in channel order of the first producer
    members: list[str] = field(default_factory=list)  # nodes that change when the group shrinks
    frozen: str | None = None  # why the group is left alone


@dataclass
class ChannelGroups:
    tracks: dict[str, Track]  # tensor name -> its channels
    edits: list[Edit]
    producers: list[Producer]
    groups: list[ChannelGroup]
    unit_of: np.ndarray  # channel id -> unit id
    group_of: dict[int, int]  # unit id -> index in `groups`
    scales: list[tuple[str, np.ndarray]]  # BatchNormalization: (input tensor, gamma) still in the graph

    def keep_mask(self, name: str, removed: np.ndarray) -> np.ndarray:
        """Which channels of tensor `name` stay, given a bool array over unit ids."""
        return ~removed[self.unit_of[self.tracks[name].ids]]

    @property
    def prunable(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.frozen is None]


def reason_kind(reason: str) -> str:
    """A frozen group's reason without its node and tensor names (each reason quotes them), so alike
    reasons count together: "graph output 'out'" -> "graph output …"."""
    return re.sub(r"'[^']*'", "…", reason)


def analyze(graph: ir.Graph) -> ChannelGroups:
    """The channel groups of `graph` (nodes in topological order, shapes inferred)."""
    return _Analysis(graph).run()


class _Barrier(Exception):
    """A node the analysis cannot see through: its tracked inputs are frozen with this reason."""


class _Analysis:
    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.tracks: dict[str, Track] = {}
        self.edits: list[Edit] = []
        self.producers: list[Producer] = []
        self.scales: list[tuple[str, np.ndarray]] = []
        self.units = UnionFind()  # channel ids that are one channel
        self.count = 0
        self.tied: list[np.ndarray] = []  # ids ranked together (one producer's outputs, one frozen tensor)
        self.frozen: list[tuple[np.ndarray, str]] = []  # in the order found: the first reason wins
        # Shape arithmetic: per int vector computed from a Shape, the tensor whose channel count each entry
        # is (None: another dim or a constant). Exporters build a Reshape's shape so from the batch.
        self.counts: dict[str, list[str | None]] = {}

    # -- walking the graph ------------------------------------------------------------------------------

    def run(self) -> ChannelGroups:
        for node in self.graph:
            # If/Loop bodies are not followed: what they read from this graph keeps its channels.
            self._freeze_values(_outer_values(node), f"{_describe(node)} reads them inside a subgraph")
            self._follow_counts(node)
            if node.op_type in PRODUCERS and node.domain in ("", "ai.onnx"):
                self._guarded(node, getattr(self, f"_{node.op_type.lower()}"))
            elif any(self._track(v) is not None for v in node.inputs):
                self._guarded(node, self._dispatch(node))
        for value in self.graph.outputs:
            if value.name in self.tracks:
                self._freeze(value, f"graph output {value.name!r}")
        return self._result()

    def _dispatch(self, node: ir.Node):
        if node.domain not in ("", "ai.onnx"):
            return None
        op = node.op_type
        if op in ELEMENTWISE:
            return self._elementwise
        if op in POOLS:
            return self._pool
        if op in REDUCTIONS:
            return self._reduce
        if op in AXIS_OPS:
            return self._along_axis
        return getattr(self, f"_{op.lower()}_op", None)

    def _guarded(self, node: ir.Node, handler) -> None:
        try:
            if handler is None:
                raise _Barrier(f"{_describe(node)} is not known to keep channels apart")
            handler(node)
        except _Barrier as barrier:
            self._freeze_values([v for v in node.inputs if v is not None], str(barrier))
            self._freeze_counts(node, str(barrier))
            for out in node.outputs:
                self.tracks.pop(out.name, None)
            self.edits = [edit for edit in self.edits if edit.node is not node]

    # -- bookkeeping ----------------------------------------------------------------------------------

    def _track(self, value: ir.Value | None) -> Track | None:
        return None if value is None else self.tracks.get(value.name)

    def _new_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self.count, self.count + n, dtype=np.int64)
        self.count += n
        self.tied.append(ids)
        return ids

    def _freeze(self, value: ir.Value, reason: str) -> None:
        track = self._track(value)
        if track is not None:
            self.frozen.append((track.ids, reason))

    def _freeze_values(self, values, reason: str) -> None:
        for value in values:
            self._freeze(value, reason)

    def _freeze_counts(self, node: ir.Node, reason: str) -> None:
        """Freeze the tensors whose channel count `node`'s inputs hold."""
        for value in node.inputs:
            for name in self.counts.get(value.name, []) if value is not None else []:
                if name is not None and name in self.tracks:
                    self.frozen.append((self.tracks[name].ids, reason))

    def _follow_counts(self, node: ir.Node) -> None:
        """Carry channel counts through shape arithmetic; a use that is neither that nor the shape of a
        Reshape or the sizes of a Resize of the same channels freezes the tensors they count."""
        held = [i for i, v in enumerate(node.inputs) if v is not None and any(self.counts.get(v.name, []))]
        shape_input = {"Reshape": 1, "Resize": 3}.get(node.op_type)
        if not held or (held == [shape_input] and self._track(node.inputs[0]) is not None):
            return  # _reshape_op and _resize_op check it
        entries = _count_step(node, self.counts) if node.domain in ("", "ai.onnx") else None
        if entries is None or any(out.is_graph_output() for out in node.outputs):
            self._freeze_counts(node, f"{_describe(node)} uses the channel count")
        else:
            self.counts[node.outputs[0].name] = entries

    def _counts_channels(self, counts: list | None, entry: int, track: Track) -> bool:
        """Whether a shape vector computed at run time takes entry `entry` from the count of `track`'s own
        channels and no other entry from a channel count: then it follows them as they shrink."""
        if counts is None or entry >= len(counts) or counts[entry] not in self.tracks:
            return False
        others = [c for i, c in enumerate(counts) if c is not None and i != entry]
        return np.array_equal(self.tracks[counts[entry]].ids, track.ids) and not others

    def _unite(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            self.units.union(x, y)

    def _set(self, value: ir.Value, axis: int, ids: np.ndarray, inner: int = 1) -> None:
        self.tracks[value.name] = Track(axis, ids, inner)

    def _slice_edit(self, node: ir.Node, index: int, axis: int, value: ir.Value, repeat: int = 1) -> None:
        self.edits.append(Edit(EditKind.SLICE, node, value.name, index=index, axis=axis, repeat=repeat))

    def _input_channels(self, node: ir.Node, x: ir.Value, axis: int, count: int) -> Track | None:
        """`x`'s track where `node` reads `count` channels on `axis`; else `x` is frozen and None."""
        track = self._track(x)
        if track is None:
            return None
        if track.axis != _axis(axis, _rank(x)) or len(track.ids) * track.inner != count:
            self._freeze(x, f"{_describe(node)} reads its channels on another axis")
            return None
        return track

    # -- producers ------------------------------------------------------------------------------------

    def _conv_input(self, node: ir.Node, x: ir.Value, c_in: int):
        """The channels a Conv or ConvTranspose reads, or None where they are not followed (a flattened
        tensor's are frozen)."""
        track = self._input_channels(node, x, 1, c_in)
        if track is not None and track.inner != 1:
            self._freeze(x, f"{_describe(node)} reads a flattened tensor")
            return None
        return track

    def _conv(self, node: ir.Node) -> None:
        x, out, weight, group = node.inputs[0], node.outputs[0], _conv_weight(node), node.attributes.get_int("group", 1)
        c_out, c_in = weight.shape[0], weight.shape[1] * group
        track = self._conv_input(node, x, c_in)
        bias = len(node.inputs) > 2 and node.inputs[2] is not None
        if group == 1:
            self._set(out, 1, self._new_ids(c_out))
            self.producers.append(Producer(node, out.name, weight, 0))
            self._slice_edit(node, 1, 0, out)
            if track is not None:
                self._slice_edit(node, 1, 1, x)
        elif group == c_in and c_out % c_in == 0:  # depthwise: output channel j reads input channel j // k
            if track is None:
                return  # its input is the graph's or frozen: nothing to follow
            self._set(out, 1, np.repeat(track.ids, c_out // c_in))
            self._slice_edit(node, 1, 0, out)
            self.edits.append(Edit(EditKind.GROUP, node, x.name))
        else:
            raise _Barrier(f"grouped {_describe(node)} (group={group}) ties channels in blocks")
        if bias:
            self._slice_edit(node, 2, 0, out)

    def _convtranspose(self, node: ir.Node) -> None:
        x, out, weight, group = node.inputs[0], node.outputs[0], _conv_weight(node), node.attributes.get_int("group", 1)
        c_in, per_group = weight.shape[0], weight.shape[1]
        track = self._conv_input(node, x, c_in)
        if group == 1:
            self._set(out, 1, self._new_ids(per_group))
            self.producers.append(Producer(node, out.name, weight, 1))
            self._slice_edit(node, 1, 1, out)
            if track is not None:
                self._slice_edit(node, 1, 0, x)
        elif group == c_in:  # depthwise: output channel j reads input channel j // per_group
            if track is None:
                return
            self._set(out, 1, np.repeat(track.ids, per_group))
            self._slice_edit(node, 1, 0, x)
            self.edits.append(Edit(EditKind.GROUP, node, x.name))
        else:
            raise _Barrier(f"grouped {_describe(node)} (group={group}) ties channels in blocks")
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            self._slice_edit(node, 2, 0, out)

    def _gemm(self, node: ir.Node) -> None:
        a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
        weight = constant_array(b)
        if weight is None or node.attributes.get_int("transA", 0):
            raise _Barrier(f"{_describe(node)} has a weight computed at run time or a transposed input")
        trans_b = node.attributes.get_int("transB", 0)
        k_axis, n_axis = (1, 0) if trans_b else (0, 1)
        self._weighted(node, a, out, weight, k_axis, n_axis, 1)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = node.inputs[2]
            shape = _const_shape(bias)
            if shape is None:
                self._freeze(out, f"{_describe(node)} adds a bias computed at run time")
            elif shape and shape[-1] == weight.shape[n_axis] > 1:
                self._slice_edit(node, 2, len(shape) - 1, out)

    def _matmul(self, node: ir.Node) -> None:
        a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
        weight = constant_array(b)
        if weight is None or weight.ndim != 2:
            raise _Barrier(f"{_describe(node)} has no 2-D constant weight (two activations multiplied)")
        self._weighted(node, a, out, weight, 0, 1, _rank(a) - 1 if _rank(a) else None)

    def _weighted(self, node, a, out, weight, k_axis, n_axis, a_axis) -> None:
        if a_axis is None:  # rank unknown: which axis it reads is unknown too
            self._freeze(a, f"{_describe(node)} reads an input of unknown rank")
        track = None if a_axis is None else self._input_channels(node, a, a_axis, weight.shape[k_axis])
        self._set(out, _rank(out) - 1 if _rank(out) else 1, self._new_ids(weight.shape[n_axis]))
        self.producers.append(Producer(node, out.name, weight, n_axis))
        self._slice_edit(node, 1, n_axis, out)
        if track is not None:
            self._slice_edit(node, 1, k_axis, a, repeat=track.inner)

    # -- channels kept apart --------------------------------------------------------------------------

    def _elementwise(self, node: ir.Node) -> None:
        """Unary ops pass channels on; Add/Mul/... of activations unite them, per-channel constants are
        sliced, broadcast ones stay."""
        out = node.outputs[0]
        rank = _rank(out)
        if rank is None:
            raise _Barrier(f"{_describe(node)} has an output of unknown rank")
        tracked = [(i, v, self._track(v)) for i, v in enumerate(node.inputs) if self._track(v) is not None]
        axes = {(rank - _rank(v) + t.axis, t.inner) for _, v, t in tracked}
        if len(axes) != 1:
            raise _Barrier(f"{_describe(node)} combines channels that lie on different axes")
        (axis, inner), = axes
        size = _dim(out, axis)
        first = None
        for i, value, track in tracked:
            if len(track.ids) * track.inner != size:
                raise _Barrier(f"{_describe(node)} broadcasts a one-channel tensor over the channels")
            if first is None:
                first = track
            else:
                self._unite(first.ids, track.ids)
        for i, value in enumerate(node.inputs):
            if value is None or self._track(value) is not None:
                continue
            own_axis = axis - (rank - (_rank(value) or 0))
            dim = _dim(value, own_axis) if own_axis >= 0 else 1
            if dim == 1 or (node.op_type in ("Clip", "Where", "Dropout") and i > 0 and dim is None):
                continue
            if dim == size and constant_array(value) is not None:
                self._slice_edit(node, i, own_axis, out, repeat=inner)
                continue
            raise _Barrier(f"{_describe(node)} combines them with {value.name!r}, whose channels are not followed")
        self._set(out, axis, first.ids, inner)

    def _batchnormalization_op(self, node: ir.Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        track = self._track(x)
        if track.axis != 1 or track.inner != 1:
            raise _Barrier(f"{_describe(node)} normalizes another axis")
        if any(constant_array(v) is None for v in node.inputs[1:]):
            raise _Barrier(f"{_describe(node)} has parameters computed at run time")
        self._set(out, 1, track.ids)
        for i in range(1, len(node.inputs)):
            self._slice_edit(node, i, 0, out)
        self.scales.append((x.name, constant_array(node.inputs[1])))

    def _instancenormalization_op(self, node: ir.Node) -> None:
        self._batchnormalization_op(node)
        self.scales.pop()  # instance norm's scale is no BatchNorm gamma

    def _layernormalization_op(self, node: ir.Node) -> None:
        track = self._track(node.inputs[0])
        start = _axis(node.attributes.get_int("axis", -1), _rank(node.inputs[0]))
        if track.axis >= start:
            raise _Barrier(f"{_describe(node)} normalizes over the channel axis")
        self._set(node.outputs[0], track.axis, track.ids, track.inner)

    def _along_axis(self, node: ir.Node) -> None:
        track = self._track(node.inputs[0])
        if _axis(node.attributes.get_int("axis", -1), _rank(node.inputs[0])) == track.axis:
            raise _Barrier(f"{_describe(node)} mixes the channels")
        self._set(node.outputs[0], track.axis, track.ids, track.inner)

    def _pool(self, node: ir.Node) -> None:
        track = self._track(node.inputs[0])
        if track.axis != 1 or track.inner != 1:
            raise _Barrier(f"{_describe(node)} pools over the channel axis")
        self._set(node.outputs[0], 1, track.ids)

    def _reduce(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track, rank = self._track(x), _rank(x)
        if node.op_type in ("ArgMax", "ArgMin"):
            axes = [node.attributes.get_int("axis", 0)]
        else:
            attr = node.attributes.get_ints("axes", None)
            axes = list(attr) if attr is not None else _const_list(node.inputs[1] if len(node.inputs) > 1 else None)
        if not axes:
            raise _Barrier(f"{_describe(node)} reduces every axis")
        axes = [_axis(a, rank) for a in axes]
        if track.axis in axes:
            raise _Barrier(f"{_describe(node)} reduces over the channel axis")
        keep = node.attributes.get_int("keepdims", 1)
        axis = track.axis if keep else track.axis - sum(a < track.axis for a in axes)
        self._set(node.outputs[0], axis, track.ids, track.inner)

    def _concat_op(self, node: ir.Node) -> None:
        out = node.outputs[0]
        rank = _rank(out)
        axis = _axis(node.attributes.get_int("axis", 0), rank)
        tracked = [self._track(v) for v in node.inputs if self._track(v) is not None]
        if any(t.axis != tracked[0].axis or t.inner != tracked[0].inner for t in tracked):
            raise _Barrier(f"{_describe(node)} joins channels that lie on different axes")
        channel_axis, inner = tracked[0].axis, tracked[0].inner
        if channel_axis != axis:  # joined along another axis: channel i of each input is channel i
            for track in tracked[1:]:
                self._unite(tracked[0].ids, track.ids)
            if any(self._track(v) is None for v in node.inputs):
                raise _Barrier(f"{_describe(node)} joins them with a tensor whose channels are not followed")
            self._set(out, channel_axis, tracked[0].ids, inner)
            return
        parts = []
        for value in node.inputs:
            track = self._track(value)
            if track is None:  # its channels stay; they get ids of their own, frozen
                dim = _dim(value, axis)
                if dim is None or dim % inner:
                    raise _Barrier(f"{_describe(node)} joins a tensor of unknown channel count")
                ids = self._new_ids(dim // inner)
                self.frozen.append((ids, f"{_describe(node)} joins them with {value.name!r}, not followed"))
                parts.append(ids)
            else:
                parts.append(track.ids)
        self._set(out, axis, np.concatenate(parts), inner)

    def _split_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track = self._track(x)
        axis = _axis(node.attributes.get_int("axis", 0), _rank(x))
        if track.axis != axis:
            for out in node.outputs:
                self._set(out, track.axis, track.ids, track.inner)
            return
        if track.inner != 1:
            raise _Barrier(f"{_describe(node)} splits a flattened channel axis")
        sizes = _split_sizes(node, len(track.ids))
        if sizes is None:
            raise _Barrier(f"{_describe(node)} has split sizes computed at run time")
        offsets = np.cumsum([0, *sizes])
        for out, start, end in zip(node.outputs, offsets[:-1], offsets[1:]):
            self._set(out, axis, track.ids[start:end])
        self.edits.append(Edit(EditKind.SPLIT, node, x.name))

    def _slice_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track, rank = self._track(x), _rank(x)
        starts, ends = _const_list(node.inputs[1]), _const_list(node.inputs[2])
        axes = _const_list(_input(node, 3)) if _input(node, 3) is not None else list(range(len(starts or [])))
        steps = _const_list(_input(node, 4)) if _input(node, 4) is not None else [1] * len(axes or [])
        if starts is None or ends is None or axes is None or steps is None:
            raise _Barrier(f"{_describe(node)} has bounds computed at run time")
        axes = [_axis(a, rank) for a in axes]
        if track.axis not in axes:
            self._set(node.outputs[0], track.axis, track.ids, track.inner)
            return
        entry = axes.index(track.axis)
        if steps[entry] != 1 or track.inner != 1:
            raise _Barrier(f"{_describe(node)} takes every n-th channel")
        start, end, _ = slice(starts[entry], ends[entry]).indices(len(track.ids))
        self._set(node.outputs[0], track.axis, track.ids[start:max(start, end)])
        self.edits.append(Edit(EditKind.SLICE_RANGE, node, x.name, index=entry))

    def _gather_op(self, node: ir.Node) -> None:
        x, indices = node.inputs[0], constant_array(node.inputs[1])
        track, rank = self._track(x), _rank(x)
        if indices is None:
            raise _Barrier(f"{_describe(node)} has indices computed at run time")
        axis = _axis(node.attributes.get_int("axis", 0), rank)
        if axis != track.axis:
            shift = indices.ndim - 1 if axis < track.axis else 0
            self._set(node.outputs[0], track.axis + shift, track.ids, track.inner)
            return
        if indices.ndim != 1 or track.inner != 1:
            raise _Barrier(f"{_describe(node)} picks channels into another shape")
        self._set(node.outputs[0], axis, track.ids[indices.astype(np.int64)])
        self.edits.append(Edit(EditKind.GATHER, node, x.name))

    def _transpose_op(self, node: ir.Node) -> None:
        track = self._track(node.inputs[0])
        perm = node.attributes.get_ints("perm", None)
        perm = list(perm) if perm is not None else list(reversed(range(_rank(node.inputs[0]))))
        self._set(node.outputs[0], perm.index(track.axis), track.ids, track.inner)

    def _unsqueeze_op(self, node: ir.Node) -> None:
        track, out = self._track(node.inputs[0]), node.outputs[0]
        axes = _axes_of(node)
        if axes is None or _rank(out) is None:
            raise _Barrier(f"{_describe(node)} has axes computed at run time")
        axes = {_axis(a, _rank(out)) for a in axes}
        kept = [i for i in range(_rank(out)) if i not in axes]
        self._set(out, kept[track.axis], track.ids, track.inner)

    def _squeeze_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track = self._track(x)
        axes = _axes_of(node)
        if axes is None:
            dims = _dims(x)
            if dims is None:
                raise _Barrier(f"{_describe(node)} squeezes axes not known before run time")
            axes = [i for i, d in enumerate(dims) if d == 1]
        axes = [_axis(a, _rank(x)) for a in axes]
        if track.axis in axes:
            raise _Barrier(f"{_describe(node)} removes the channel axis")
        self._set(node.outputs[0], track.axis - sum(a < track.axis for a in axes), track.ids, track.inner)

    def _flatten_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track, dims = self._track(x), _dims(x)
        split = _axis(node.attributes.get_int("axis", 1), _rank(x))
        self._merge_into(node, track, dims, split, [None, None])

    def _reshape_op(self, node: ir.Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        counts = None if constant_array(node.inputs[1]) is not None else self.counts.get(node.inputs[1].name)
        if constant_array(node.inputs[1]) is None and counts is None:
            raise _Barrier(f"{_describe(node)} takes its shape at run time")
        track, dims, out_dims = self._track(x), _dims(x), _dims(out)
        if dims is None or out_dims is None:
            raise _Barrier(f"{_describe(node)} has shapes not known before run time")
        # The output axis whose leading dims hold the same elements as the input's before the channel axis.
        before = _product(dims[:track.axis])
        for b in range(len(out_dims) + 1):
            if _product(out_dims[:b]) == before:
                break
        else:
            raise _Barrier(f"{_describe(node)} merges the channel axis with the ones before it")
        self._merge_into(node, track, dims, b, out_dims, reshape=True, counts=counts)

    def _merge_into(self, node, track, dims, b, out_dims, reshape=False, counts=None) -> None:
        """The channels of `dims` (tracked on `track.axis`) land on output axis `b`: each channel's
        positions, `inner` times the dims after the channel axis, must tile that output axis and those
        after it. A Reshape's shape computed at run time (`counts`) must take that axis from the
        channel count of these same channels, and no other entry from a channel count."""
        if dims is None or any(not isinstance(d, int) for d in dims[track.axis + 1:]):
            raise _Barrier(f"{_describe(node)} has shapes not known before run time")
        out = node.outputs[0]
        span = track.inner * _product(dims[track.axis + 1:])[0]  # positions per channel, flattened
        if not reshape:  # Flatten: axis b is everything from `b` on, the channel must be first there
            if b > track.axis or _product(dims[b:track.axis]) != (1, 0):
                raise _Barrier(f"{_describe(node)} merges the channel axis with the ones before it")
            self._set(out, 1, track.ids, span)
            return
        after, unknown = _product(out_dims[b + 1:]) if b < len(out_dims) else (0, 0)
        if unknown or after == 0 or span % after:
            raise _Barrier(f"{_describe(node)} splits the channel axis")
        inner = span // after
        if out_dims[b] != len(track.ids) * inner:
            raise _Barrier(f"{_describe(node)} splits the channel axis")
        if counts is not None:
            if inner != 1 or not self._counts_channels(counts, b, track):
                raise _Barrier(f"{_describe(node)} takes a shape computed at run time that does not count the "
                               f"channels")
            self._set(out, b, track.ids)  # the shape follows the channel count by itself
            return
        self._set(out, b, track.ids, inner)
        self.edits.append(Edit(EditKind.RESHAPE, node, out.name, index=b))

    def _pad_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track, rank = self._track(x), _rank(x)
        pads = node.attributes.get_ints("pads", None)
        pads = list(pads) if pads is not None else _const_list(_input(node, 1))
        axes = _const_list(_input(node, 3)) if _input(node, 3) is not None else list(range(rank or 0))
        if pads is None or axes is None:
            raise _Barrier(f"{_describe(node)} has pads computed at run time")
        axes = [_axis(a, rank) for a in axes]
        if track.axis in axes:
            at = axes.index(track.axis)
            if pads[at] or pads[at + len(axes)]:
                raise _Barrier(f"{_describe(node)} pads the channel axis")
        self._set(node.outputs[0], track.axis, track.ids, track.inner)

    def _resize_op(self, node: ir.Node) -> None:
        x = node.inputs[0]
        track = self._track(x)
        if node.attributes.get_ints("axes", None) is not None:
            raise _Barrier(f"{_describe(node)} resizes named axes")
        scales_input = _input(node, 2) if node.op_type == "Resize" else _input(node, 1)
        sizes = _input(node, 3) if node.op_type == "Resize" else None
        if sizes is not None and _const_shape(sizes) != (0,):
            if constant_array(sizes) is not None:
                self.edits.append(Edit(EditKind.RESIZE, node, node.outputs[0].name, index=track.axis))
            elif not self._counts_channels(self.counts.get(sizes.name), track.axis, track):
                raise _Barrier(f"{_describe(node)} takes sizes at run time that do not count the channels")
        else:
            scales = _const_list(scales_input, float)
            if scales is None or scales[track.axis] != 1:
                raise _Barrier(f"{_describe(node)} scales the channel axis or at run time")
        if track.inner != 1:
            raise _Barrier(f"{_describe(node)} resizes a flattened tensor")
        self._set(node.outputs[0], track.axis, track.ids)

    _upsample_op = _resize_op

    def _tile_op(self, node: ir.Node) -> None:
        track = self._track(node.inputs[0])
        repeats = _const_list(node.inputs[1])
        if repeats is None or repeats[track.axis] != 1:
            raise _Barrier(f"{_describe(node)} repeats the channel axis or at run time")
        self._set(node.outputs[0], track.axis, track.ids, track.inner)

    def _shape_op(self, node: ir.Node) -> None:
        """Which entry of the shape is the channel count (followed by `_follow_counts`)."""
        x, out = node.inputs[0], node.outputs[0]
        track, rank = self._track(x), _rank(x)
        start = _axis(node.attributes.get_int("start", 0), rank)
        end = node.attributes.get_int("end", rank)
        end = _axis(end, rank) if end < 0 else min(end, rank)
        self.counts[out.name] = [x.name if axis == track.axis else None for axis in range(start, end)]
        if out.is_graph_output():
            raise _Barrier(f"{_describe(node)} reads the channel count")

    # -- the result -----------------------------------------------------------------------------------

    def _result(self) -> ChannelGroups:
        unit_of = np.array([self.units.find(i) for i in range(self.count)], dtype=np.int64)
        tied = UnionFind()
        for ids in self.tied:
            units = unit_of[ids].tolist()
            for unit in units:
                tied.union(units[0], unit)
        order: dict[int, int] = {}  # group root -> index, in the order producers appear
        groups: list[ChannelGroup] = []
        group_of: dict[int, int] = {}
        first_node = {}  # group root -> the name of its first producer
        for producer in self.producers:
            for unit in unit_of[self.tracks[producer.output].ids].tolist():
                first_node.setdefault(tied.find(unit), producer.node.name or producer.output)
        for unit in dict.fromkeys(unit_of.tolist()):
            root = tied.find(unit)
            if root not in order:
                order[root] = len(groups)
                groups.append(ChannelGroup(first_node.get(root, f"channels {unit}"), []))
            group_of[unit] = order[root]
            groups[order[root]].units.append(unit)
        for ids, reason in self.frozen:
            for unit in set(unit_of[ids].tolist()):
                group = groups[group_of[unit]]
                group.frozen = group.frozen or reason
        for edit in self.edits:
            track = self.tracks.get(edit.value)
            if track is None or not len(track.ids):
                continue
            label = edit.node.name or edit.node.outputs[0].name
            for index in dict.fromkeys(group_of[unit] for unit in unit_of[track.ids].tolist()):
                if label not in groups[index].members:
                    groups[index].members.append(label)
        return ChannelGroups(self.tracks, self.edits, self.producers, groups, unit_of, group_of, self.scales)


# -- small helpers ----------------------------------------------------------------------------------------


def _describe(node: ir.Node) -> str:
    return f"{node.op_type} {node.name or node.outputs[0].name!r}"


def _outer_values(node: ir.Node) -> list[ir.Value]:
    """Values of the enclosing graph that a node's subgraphs read."""
    found = []
    for attr in node.attributes.values():
        graphs = [attr.value] if attr.type == ir.AttributeType.GRAPH else (
            list(attr.value) if attr.type == ir.AttributeType.GRAPHS else [])
        for graph in graphs:
            inside = {v for n in ir.traversal.RecursiveGraphIterator(graph) for v in n.outputs} | set(graph.inputs)
            inside |= set(graph.initializers.values())
            found += [v for n in ir.traversal.RecursiveGraphIterator(graph) for v in n.inputs
                      if v is not None and v not in inside]
    return found


def _count_step(node: ir.Node, counts: dict[str, list]) -> list | None:
    """The count entries of `node`'s output where it is a step of shape arithmetic; else None."""
    entries = counts.get(node.inputs[0].name) if node.inputs and node.inputs[0] is not None else None
    op = node.op_type
    if op in ("Cast", "Identity", "Unsqueeze", "Squeeze") and entries is not None:
        return list(entries)
    if op == "Gather" and entries is not None and node.attributes.get_int("axis", 0) == 0:
        indices = constant_array(node.inputs[1])
        return None if indices is None else [entries[int(i)] for i in indices.ravel()]
    if op == "Slice" and entries is not None:
        starts, ends = _const_list(node.inputs[1]), _const_list(node.inputs[2])
        axes = _const_list(_input(node, 3)) if _input(node, 3) is not None else [0]
        steps = _const_list(_input(node, 4)) if _input(node, 4) is not None else [1]
        if None in (starts, ends, axes, steps) or axes not in ([0], [-1]) or len(steps) != 1:
            return None
        return entries[slice(starts[0], ends[0], steps[0])]
    if op == "Concat":
        joined = []
        for value in node.inputs:
            if value is not None and value.name in counts:
                joined += counts[value.name]
            elif value is not None and _rank(value) in (0, 1) and (_rank(value) == 0 or _dim(value, 0) is not None):
                joined += [None] * (1 if _rank(value) == 0 else _dim(value, 0))
            else:
                return None
        return joined
    return None


def _input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if len(node.inputs) > index else None


def _rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def _dims(value: ir.Value) -> list | None:
    return None if value.shape is None else list(value.shape.dims)


def _dim(value: ir.Value, axis: int) -> int | None:
    dims = _dims(value)
    if dims is None or not 0 <= axis < len(dims):
        return None
    return dims[axis] if isinstance(dims[axis], int) else None


def _axis(axis: int, rank: int | None) -> int:
    return axis + rank if axis < 0 and rank is not None else axis


def _product(dims) -> tuple[int, int]:
    """The product of the int dims, and how many are not known (the batch), so that [batch, 4] equals
    [N, 2, 2]: a Reshape moves the batch along with the leading dims."""
    total, unknown = 1, 0
    for d in dims:
        if isinstance(d, int):
            total *= d
        else:
            unknown += 1
    return total, unknown


def _const_list(value: ir.Value | None, kind=int) -> list | None:
    array = constant_array(value)
    return None if array is None else [kind(v) for v in array.ravel()]


def _const_shape(value: ir.Value | None) -> tuple | None:
    array = constant_array(value)
    return None if array is None else tuple(array.shape)


def _axes_of(node: ir.Node) -> list[int] | None:
    attr = node.attributes.get_ints("axes", None)
    if attr is not None:
        return list(attr)
    return _const_list(_input(node, 1))


def _split_sizes(node: ir.Node, channels: int) -> list[int] | None:
    attr = node.attributes.get_ints("split", None)
    if attr is not None:
        return list(attr)
    if _input(node, 1) is not None:
        return _const_list(node.inputs[1])
    pieces = len(node.outputs)
    size = -(-channels // pieces)  # opset 18 num_outputs: equal pieces, the last one smaller
    return [min(size, channels - i * size) for i in range(pieces)]


def _conv_weight(node: ir.Node) -> np.ndarray:
    """A Conv's or ConvTranspose's constant weight; one computed at run time is a barrier."""
    weight = constant_array(node.inputs[1])
    if weight is None:
        raise _Barrier(f"{_describe(node)} has a weight computed at run time")
    return weight

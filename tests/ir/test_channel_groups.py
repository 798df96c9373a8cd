"""The channel-group analysis on tiny graphs: groups through Add, Concat, depthwise convs, Flatten -> Gemm
and Split, and barriers frozen with their reason."""

from __future__ import annotations

import numpy as np

from qconvert.ir.channel_groups import EditKind, analyze
from qconvert.ir.union_find import UnionFind
from tests.ir import channel_graphs


def _groups(model):
    analysis = analyze(model.graph)
    return analysis, {group.name: group for group in analysis.groups}


def _units(analysis, name):
    return analysis.unit_of[analysis.tracks[name].ids].tolist()


def test_union_find_keeps_the_first_root():
    sets = UnionFind()
    sets.union("b", "c")
    sets.union("a", "c")
    assert sets.find("c") == sets.find("b") == sets.find("a") == "a"
    assert sets.find("z") == "z"


def test_residual_add_unites_both_convs_channel_by_channel():
    analysis, groups = _groups(channel_graphs.residual())
    assert list(groups) == ["a", "out"]
    assert _units(analysis, "a") == _units(analysis, "b") == _units(analysis, "s")  # channel i is one unit
    assert len(groups["a"].units) == 16 and groups["a"].frozen is None
    assert groups["a"].members == ["a", "b", "out"]  # b's filters and inputs, out's inputs
    assert groups["out"].frozen == "graph output 'out'"


def test_concat_lays_its_inputs_channels_end_to_end():
    analysis, groups = _groups(channel_graphs.concat())
    assert _units(analysis, "c") == _units(analysis, "a") + _units(analysis, "b")
    assert [len(groups[n].units) for n in ("a", "b")] == [6, 10]
    assert groups["a"].frozen is None and groups["b"].frozen is None
    # The BatchNormalization after the Concat and the conv reading it change with either group.
    assert {"n", "out"} <= set(groups["a"].members) and {"n", "out"} <= set(groups["b"].members)
    assert [name for name, _ in analysis.scales] == ["c"]


def test_depthwise_conv_and_per_channel_mul_pass_the_channels_on():
    analysis, groups = _groups(channel_graphs.depthwise())
    assert _units(analysis, "a") == _units(analysis, "d") == _units(analysis, "m") == _units(analysis, "r")
    assert groups["a"].members == ["a", "d", "m", "out"]
    assert [e.kind for e in analysis.edits if e.node.outputs[0].name == "d"].count(EditKind.GROUP) == 1


def test_flatten_maps_each_channel_to_its_rows_of_the_gemm():
    analysis, groups = _groups(channel_graphs.flatten_gemm())
    track = analysis.tracks["f"]
    assert (track.axis, len(track.ids), track.inner) == (1, 8, 9)
    rows = [e for e in analysis.edits if e.node.outputs[0].name == "h" and e.value == "f"]
    assert [(e.axis, e.repeat) for e in rows] == [(1, 9)]  # transB: the weight's axis 1, 9 rows a channel
    assert groups["a"].members == ["a", "h"] and groups["h"].frozen is None  # the hidden Gemm is prunable
    assert groups["out"].frozen == "graph output 'out'"


def test_split_takes_the_channels_apart_by_offsets():
    analysis, groups = _groups(channel_graphs.split())
    assert _units(analysis, "p") + _units(analysis, "q") == _units(analysis, "a")
    assert len(_units(analysis, "p")) == 4
    assert groups["a"].frozen is None and {"p", "cp", "cq"} <= set(groups["a"].members)


def test_a_reshape_that_splits_the_channel_axis_is_a_barrier():
    analysis, groups = _groups(channel_graphs.barrier())
    assert groups["a"].frozen == "Reshape 's' splits the channel axis"
    assert "m" not in analysis.tracks  # nothing after the barrier is followed
    assert groups["out"].frozen == "graph output 'out'"


def test_every_channel_is_in_exactly_one_group():
    for build in (channel_graphs.residual, channel_graphs.concat, channel_graphs.split):
        analysis = analyze(build().graph)
        units = [u for g in analysis.groups for u in g.units]
        assert len(units) == len(set(units)) == len(np.unique(analysis.unit_of))


def test_grouped_convs_and_unknown_ops_freeze_what_they_read():
    analysis, groups = _groups(channel_graphs.unknown_ops())
    assert groups["a"].frozen == "grouped Conv 'b' (group=2) ties channels in blocks"
    assert groups["d"].frozen == "LRN 'l' is not known to keep channels apart"
    assert "b" not in analysis.tracks and "l" not in analysis.tracks
    assert [g.name for g in analysis.prunable] == []


def test_a_reshape_whose_run_time_shape_counts_the_channels_follows_them():
    analysis, groups = _groups(channel_graphs.runtime_reshape())
    assert groups["a"].frozen is None and _units(analysis, "back") == _units(analysis, "a")
    assert (analysis.tracks["r"].axis, analysis.tracks["back"].axis) == (3, 1)
    assert not [e for e in analysis.edits if e.node.op_type == "Reshape"]  # its shape follows by itself
    _, groups = _groups(channel_graphs.runtime_reshape(scaled=True))
    assert groups["a"].frozen == "Mul 'scaled' uses the channel count"

"""Channel pruning on tiny graphs: op lists and shapes before and after, zeroing equals removal through
onnxruntime, rounding to a multiple, importance, and bad options as one-line errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qconvert.errors import UsageError
from qconvert.ir.values import constant_array
from qconvert.passes.prune_channels import Importance, PruneChannels, prune_channels
from tests.ir import channel_graphs
from tests.passes.channel_zeroing import zeroed
from tests.passes.helpers import ops, random_inputs, run

GRAPHS = ["residual", "concat", "depthwise", "flatten_gemm", "split", "slice_gather", "runtime_reshape", "runtime_resize",
          "barrier"]


def _shape(model, name):
    values = ir.convenience.create_value_mapping(model.graph)
    return [d if isinstance(d, int) else "N" for d in values[name].shape]


def _weight(model, name):
    return constant_array(model.graph.initializers[name])


@pytest.mark.parametrize("name", GRAPHS)
def test_zeroing_equals_removal(name):
    model = getattr(channel_graphs, name)()
    before = ir.serde.serialize_model(model).SerializeToString()
    pruned, report = prune_channels(model, 0.5, Importance.L1, multiple_of=1)
    assert ir.serde.serialize_model(model).SerializeToString() == before  # the input stays as it was
    assert ops(pruned) == ops(model)
    onnx.checker.check_model(ir.serde.serialize_model(pruned), full_check=True)
    feeds = random_inputs(model)
    reference, unpruned = run(zeroed(model, report.keep), feeds), run(model, feeds)
    for want, got, original in zip(reference, run(pruned, feeds), unpruned):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        if name != "barrier":
            assert np.abs(got - original).max() > 1e-2  # channels did go
    if name == "barrier":
        assert report.params_after == report.params_before
    else:
        assert report.params_after < report.params_before and report.macs_after < report.macs_before


def test_residual_shapes_before_and_after():
    model = channel_graphs.residual()
    pruned, report = prune_channels(model, 0.5, multiple_of=1)
    assert [_weight(pruned, w).shape for w in ("Wa", "Ba", "Wb", "Bb", "Wc")] == [
        (8, 3, 3, 3), (8,), (8, 8, 3, 3), (8,), (4, 8, 1, 1)]
    assert _shape(model, "s") == ["N", 16, 8, 8] and _shape(pruned, "s") == ["N", 8, 8, 8]
    assert _shape(pruned, "out") == ["N", 4, 8, 8]
    # Parameters: 16*27+16 + 16*144+16 + 64 -> 8*27+8 + 8*72+8 + 32; MACs per sample likewise.
    assert (report.params_before, report.params_after) == (2832, 840)
    assert (report.macs_before, report.macs_after) == (64 * (16 * 27 + 16 * 144 + 4 * 16), 64 * (8 * 27 + 8 * 72 + 4 * 8))
    assert [(g.name, g.channels, g.kept, g.frozen) for g in report.groups] == [
        ("a", 16, 8, None), ("out", 4, 4, "graph output 'out'")]


def test_l1_removes_the_units_with_the_smallest_filter_norms_summed_over_producers():
    model = channel_graphs.residual()
    pruned, report = prune_channels(model, 0.5, Importance.L1, multiple_of=1)
    norms = np.abs(_weight(model, "Wa")).sum((1, 2, 3)) + np.abs(_weight(model, "Wb")).sum((1, 2, 3))
    np.testing.assert_array_equal(report.keep["a"], norms >= np.sort(norms)[8])
    l2 = np.sqrt((_weight(model, "Wa") ** 2).sum((1, 2, 3))) + np.sqrt((_weight(model, "Wb") ** 2).sum((1, 2, 3)))
    _, report = prune_channels(model, 0.5, Importance.L2, multiple_of=1)
    np.testing.assert_array_equal(report.keep["a"], l2 >= np.sort(l2)[8])


def test_split_sizes_follow_the_kept_channels():
    model = channel_graphs.split()
    pruned, report = prune_channels(model, 0.5, multiple_of=1)
    split = next(node for node in pruned.graph if node.op_type == "Split")
    assert constant_array(split.inputs[1]).tolist() == [int(report.keep["p"].sum()), int(report.keep["q"].sum())]
    assert sum(constant_array(split.inputs[1])) == 6


def test_slice_and_gather_are_renumbered_in_kept_channels():
    model = channel_graphs.slice_gather()
    pruned, report = prune_channels(model, 0.5, multiple_of=1)
    keep = report.keep["r"]
    position = np.cumsum(keep) - 1
    nodes = {node.op_type: node for node in pruned.graph}
    kept_slice = [c for c in range(2, 7) if keep[c]]
    assert constant_array(nodes["Slice"].inputs[1]).tolist() == [position[kept_slice[0]]]
    assert constant_array(nodes["Slice"].inputs[2]).tolist() == [position[kept_slice[-1]] + 1]
    assert constant_array(nodes["Gather"].inputs[1]).tolist() == [position[c] for c in (7, 0, 3, 3) if keep[c]]


def test_kept_counts_round_up_to_the_multiple_and_never_past_the_group():
    model = channel_graphs.concat()  # groups of 6 and 10 channels
    kept = {m: {g.name: g.kept for g in prune_channels(model, 0.5, multiple_of=m)[1].groups} for m in (1, 4, 8)}
    assert kept[1] == {"a": 3, "b": 5, "out": 5}
    assert kept[4] == {"a": 4, "b": 8, "out": 5}
    assert kept[8] == {"a": 6, "b": 8, "out": 5}
    assert _shape(prune_channels(model, 0.5, multiple_of=4)[0], "c") == ["N", 12, 8, 8]
    # Nearly everything asked: each group keeps one channel, never none.
    assert {g.name: g.kept for g in prune_channels(model, 0.99, multiple_of=1)[1].groups} == {"a": 1, "b": 1, "out": 5}


def test_zero_target_changes_nothing():
    model = channel_graphs.residual()
    result = PruneChannels(target=0.0)(model)
    assert not result.modified and _weight(result.model, "Wa").shape == (16, 3, 3, 3)


def test_bn_importance_ranks_by_gamma_where_a_batchnorm_is_left():
    model = channel_graphs.concat()
    _, report = prune_channels(model, 0.5, Importance.BN, multiple_of=1)
    gamma = np.abs(_weight(model, "g"))
    for name, part in (("a", gamma[:6]), ("b", gamma[6:])):
        np.testing.assert_array_equal(report.keep[name], part >= np.sort(part)[len(part) // 2])


def test_bn_importance_ranks_by_the_gamma_recorded_when_the_batchnorm_was_folded():
    """Cleanup folds the BatchNorm; its gamma, recorded then, still ranks the channels (the four largest
    |gamma| stay), where the folded filters' L1 norms, made to rank the other way, would keep the others."""
    from qconvert.passes.pipelines import cleanup

    gamma = np.array([0.1, 5.0, 0.2, 4.0, 0.3, 3.0, 0.4, 2.0], np.float32)
    model = channel_graphs.build(
        "g (float[N, 3, 8, 8] x) => (float[N, 4, 8, 8] out)",
        {"Wa": (8, 3, 3, 3), "g": ("float", gamma), "be": (8,), "m": (8,), "v": ("float", np.ones(8)),
         "Wc": (4, 8, 1, 1)},
        ["a = Conv<pads = [1, 1, 1, 1]>(x, Wa)", "n = BatchNormalization(a, g, be, m, v)", "r = Relu(n)",
         "out = Conv(r, Wc)"])
    weight = model.graph.initializers["Wa"]
    scaled = np.sign(constant_array(weight)) / gamma.reshape(-1, 1, 1, 1) ** 2  # |W'| = 1 / |gamma| after the fold
    weight.const_value = ir.tensor(scaled.astype(np.float32), name="Wa")
    folded = cleanup(model)
    assert "BatchNormalization" not in ops(folded)
    producer = next(node for node in folded.graph if node.op_type == "Conv").outputs[0].name
    by_gamma = prune_channels(folded, 0.5, Importance.BN, multiple_of=1)[1].keep[producer]
    by_norm = prune_channels(folded, 0.5, Importance.L1, multiple_of=1)[1].keep[producer]
    assert by_gamma.tolist() == [False, True, False, True, False, True, False, True]
    assert by_norm.tolist() == [True, False, True, False, True, False, True, False]


@pytest.mark.parametrize("options, expected", [
    (dict(target=1.0), "channel pruning 1: give the share of channels removed"),
    (dict(target=-0.2), "channel pruning -0.2"),
    (dict(target=0.5, multiple_of=0), "multiple_of 0 must be 1 or more"),
    (dict(target=0.5, importance=Importance.BN), "--prune-importance bn: no BatchNormalization's gamma is known"),
])
def test_bad_options_are_one_line_errors(options, expected):
    with pytest.raises(UsageError) as error:
        PruneChannels(**options)(channel_graphs.residual())  # its BatchNorms were folded: none is left
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_channels_added_to_an_input_the_analysis_does_not_follow_stay():
    model = channel_graphs.untracked_partner()
    pruned, report = prune_channels(model, 0.5, multiple_of=1)
    assert [(g.name, g.kept, g.frozen) for g in report.groups] == [
        ("b", 3, None), ("a", 8, "Sum 's' combines them with 'y', whose channels are not followed"),
        ("out", 2, "graph output 'out'")]
    assert _weight(pruned, "Wa").shape == (8, 3, 1, 1) and _weight(pruned, "k").shape == (1, 8, 1, 1)

"""The fold-factor record (qconvert/ir/fold_factors.py): folds multiply into it, a refold scales factor and
gamma, channel pruning slices it, renames and copies carry it, and magnitudes come out as trained."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors


def _graph() -> ir.Graph:
    return ir.Graph([], [], nodes=[])


def test_folds_multiply_and_a_refold_scales_the_gamma_too():
    graph = _graph()
    fold_factors.record(graph, "w", np.array([2.0, 4.0]).reshape(2, 1), gamma=np.array([1.0, 3.0]))
    fold_factors.record(graph, "w", np.array([0.5, 0.5]).reshape(2, 1))  # a Mul folded after it
    np.testing.assert_array_equal(fold_factors.factors(graph)["w"].reshape(-1), [1.0, 2.0])
    np.testing.assert_array_equal(fold_factors.gamma(graph, "w"), [1.0, 3.0])
    fold_factors.refolded(graph, "w", np.array([3.0, 0.5]).reshape(2, 1))
    np.testing.assert_array_equal(fold_factors.factors(graph)["w"].reshape(-1), [3.0, 1.0])
    np.testing.assert_array_equal(fold_factors.gamma(graph, "w"), [3.0, 1.5])
    fold_factors.refolded(graph, "v", np.array([2.0]))  # no BatchNorm before: a factor, no gamma
    assert fold_factors.gamma(graph, "v") is None and fold_factors.factors(graph)["v"].tolist() == [2.0]


def test_take_rename_and_carry():
    graph = _graph()
    fold_factors.record(graph, "w", np.array([1.0, 2.0, 4.0]).reshape(3, 1, 1, 1), gamma=np.array([5.0, 6.0, 7.0]))
    fold_factors.take(graph, "w", np.array([True, False, True]), axis=1)  # input channels: factor unchanged
    assert fold_factors.factors(graph)["w"].shape == (3, 1, 1, 1)
    fold_factors.take(graph, "w", np.array([True, False, True]), axis=0, new_name="w_pruned")
    np.testing.assert_array_equal(fold_factors.factors(graph)["w_pruned"].reshape(-1), [1.0, 4.0])
    np.testing.assert_array_equal(fold_factors.gamma(graph, "w_pruned"), [5.0, 7.0])
    fold_factors.rename(graph, "w_pruned", "w_folded")
    copy = _graph()
    fold_factors.carry(graph, copy)
    np.testing.assert_array_equal(fold_factors.gamma(copy, "w_folded"), [5.0, 7.0])
    fold_factors.factors(copy)["w_folded"] *= 0  # a copy: the source keeps its own
    assert fold_factors.factors(graph)["w_folded"].reshape(-1).tolist() == [1.0, 4.0]


def test_magnitudes_as_trained_divide_the_factor_out():
    graph = _graph()
    weight = np.array([[2.0, -4.0], [0.0, 3.0]], np.float32)
    assert fold_factors.as_trained(graph, "w", weight)[1] is False
    fold_factors.record(graph, "w", np.array([[2.0], [0.0]]))  # a gamma of 0 zeroed the second filter
    magnitudes, recorded = fold_factors.as_trained(graph, "w", weight)
    assert recorded and magnitudes.tolist() == [[1.0, 2.0], [0.0, 0.0]]

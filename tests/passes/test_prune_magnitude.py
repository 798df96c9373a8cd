"""PruneMagnitude on tiny graphs: exact zero counts per layer and globally, which weights each threshold
takes, the depthwise and first/last scope, shared weights, and the cases where it must not fire."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from qconvert.ir.layer_weights import layer_weights
from qconvert.ir.values import copy_model
from qconvert.passes.pipelines import cleanup
from qconvert.passes.prune_magnitude import (Magnitudes, PruneMagnitude, PruneScope, Threshold, prune_global,
                                             prune_layerwise)
from tests.passes.helpers import ops, random_inputs, run

OPS = ["Conv", "Relu", "Conv", "Conv", "GlobalAveragePool", "Flatten", "Gemm", "MatMul"]
SCALES = {"w_stem": 1.0, "w_dw": 0.5, "w_pw": 0.01, "w_fc": 0.1, "w_out": 2.0}  # std of each layer's weights


def network(seed: int = 0) -> ir.Model:
    """x [1,4,6,6] -> Conv 3x3 -> Relu -> depthwise Conv -> 1x1 Conv -> pool -> Gemm (transB) -> MatMul."""
    rng = np.random.default_rng(seed)
    shapes = {"w_stem": (8, 4, 3, 3), "w_dw": (8, 1, 3, 3), "w_pw": (8, 8, 1, 1), "w_fc": (6, 8), "w_out": (6, 3)}
    weights = {name: (rng.standard_normal(shape) * SCALES[name]).astype(np.float32) for name, shape in shapes.items()}
    weights.update(b_stem=rng.standard_normal(8).astype(np.float32) * 1e-3,
                   b_fc=rng.standard_normal(6).astype(np.float32) * 1e-3)
    nodes = [helper.make_node("Conv", ["x", "w_stem", "b_stem"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w_dw"], ["c2"], group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c2", "w_pw"], ["c3"]),
             helper.make_node("GlobalAveragePool", ["c3"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w_fc", "b_fc"], ["g"], transB=1),
             helper.make_node("MatMul", ["g", "w_out"], ["y"])]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(w, name) for name, w in weights.items()])
    return ir.serde.deserialize_model(helper.make_model(graph, ir_version=8,
                                                                    opset_imports=[helper.make_opsetid("", 17)]))


def arrays(model: ir.Model) -> dict[str, np.ndarray]:
    return {name: v.const_value.numpy() for name, v in model.graph.initializers.items()}


def zeros(array: np.ndarray) -> int:
    return int(array.size - np.count_nonzero(array))


def test_layerwise_zeroes_each_weight_to_its_exact_share_and_leaves_biases():
    model, before = network(), arrays(network())
    records = prune_layerwise(model, 0.6)
    after = arrays(model)
    assert ops(model) == OPS
    assert [r.name for r in records] == ["w_stem", "w_pw", "w_fc", "w_out"]  # graph order, no depthwise
    for record in records:
        weight, original = after[record.name], before[record.name]
        assert zeros(weight) == record.zeros == round(0.6 * weight.size), record.name
        # the zeros are the smallest: every kept |w| is at least every pruned one
        assert np.abs(original[weight != 0]).min() >= np.abs(original[weight == 0]).max()
        np.testing.assert_array_equal(weight[weight != 0], original[weight != 0])
    for name in ("w_dw", "b_stem", "b_fc"):
        np.testing.assert_array_equal(after[name], before[name])
    onnx.checker.check_model(ir.serde.serialize_model(model))
    assert run(model, random_inputs(model))[0].shape == (1, 3)


def test_global_takes_one_threshold_and_keeps_the_larger_weights():
    layerwise, globally, before = network(), network(), arrays(network())
    prune_layerwise(layerwise, 0.7)
    records = prune_global(globally, 0.7)
    names = [r.name for r in records]
    total = sum(before[n].size for n in names)
    assert sum(r.zeros for r in records) == round(0.7 * total)
    after = arrays(globally)
    kept = np.concatenate([np.abs(before[n][after[n] != 0]) for n in names])
    pruned = np.concatenate([np.abs(before[n][after[n] == 0]) for n in names])
    assert kept.min() >= pruned.max()
    # Layers differ in scale: the 0.01-scale 1x1 conv goes entirely, the 2.0-scale output loses less than 0.7.
    share = {r.name: r.zeros / r.params for r in records}
    assert share["w_pw"] == 1.0 and share["w_out"] < 0.5
    # The same number of zeros; global keeps the larger weights (more L1 mass) than per-layer thresholds.
    layer_after = arrays(layerwise)
    assert sum(zeros(layer_after[n]) for n in names) == pytest.approx(sum(zeros(after[n]) for n in names), abs=2)
    l1 = {"global": sum(np.abs(after[n]).sum() for n in names),
          "layer": sum(np.abs(layer_after[n]).sum() for n in names)}
    assert l1["global"] > 1.05 * l1["layer"]


def test_depthwise_and_first_last_scope():
    model = network()
    records = prune_layerwise(model, 0.5, PruneScope(depthwise=True))
    assert [r.name for r in records] == ["w_stem", "w_dw", "w_pw", "w_fc", "w_out"]
    assert zeros(arrays(model)["w_dw"]) == 36

    model, before = network(), arrays(network())
    records = prune_global(model, 0.5, PruneScope(depthwise=True, keep_first_last=True))
    assert [r.name for r in records] == ["w_dw", "w_pw", "w_fc"]
    for name in ("w_stem", "w_out"):
        np.testing.assert_array_equal(arrays(model)[name], before[name])


def test_ties_are_broken_by_position_and_the_result_is_reproducible():
    model = network()
    stem = model.graph.initializers["w_stem"]
    stem.const_value = ir.tensor(np.full((8, 4, 3, 3), 0.5, np.float32), name="w_stem")
    prune_layerwise(model, 0.25)
    flat = arrays(model)["w_stem"].reshape(-1)
    assert np.all(flat[:72] == 0) and np.all(flat[72:] == 0.5)  # the first round(0.25 * 288) elements
    again = network()
    again.graph.initializers["w_stem"].const_value = ir.tensor(np.full((8, 4, 3, 3), 0.5, np.float32), name="w_stem")
    prune_global(again, 0.4)
    twice = network()
    twice.graph.initializers["w_stem"].const_value = ir.tensor(np.full((8, 4, 3, 3), 0.5, np.float32), name="w_stem")
    prune_global(twice, 0.4)
    for name, array in arrays(again).items():
        np.testing.assert_array_equal(array, arrays(twice)[name])


SHARED = """<ir_version: 8, opset_import: ["" : 17]>
shared (float[1, 4] x) => (float[1, 4] y, float[4, 4] z)
<float[4, 4] w = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.2, -0.1, 0.05, 0.6, -0.3, 0.01},
 float[4, 4] v = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.2, -0.1, 0.05, 0.6, -0.3, 0.01},
 float[4, 4] one = {1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.}>
{ a = MatMul (x, w)
  b = MatMul (a, w)
  c = MatMul (b, v)
  y = MatMul (c, v)
  z = Add (v, one) }"""


def test_a_weight_read_by_two_layers_is_pruned_once_and_one_read_by_another_op_is_left():
    model = ir.serde.deserialize_model(onnx.parser.parse_model(SHARED))
    before = arrays(model)
    records = prune_layerwise(model, 0.5)
    assert [(r.name, r.params, r.zeros) for r in records] == [("w", 16, 8)]
    np.testing.assert_array_equal(arrays(model)["v"], before["v"])  # the Add reads it too


INPUT_WEIGHT = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 4] x, float[4, 4] w) => (float[1, 4] y, float[1, 4] u)
<float[4, 4] w = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.2, -0.1, 0.05, 0.6, -0.3, 0.01},
 int64[2] shape = {1, 4}>
{ y = MatMul (x, w)
  u = MatMul (x, y) }"""


def test_nothing_to_prune():
    # sparsity 0; a weight the caller may override (an initializer that is a graph input); two activations
    model, before = network(), arrays(network())
    pass_ = PruneMagnitude(sparsity=0.0)
    assert not pass_(model).modified and [r.zeros for r in pass_.pruned] == [0, 0, 0, 0]
    for name, array in arrays(model).items():
        np.testing.assert_array_equal(array, before[name])
    model = ir.serde.deserialize_model(onnx.parser.parse_model(INPUT_WEIGHT))
    before = arrays(model)
    pass_ = PruneMagnitude(sparsity=0.5, threshold=Threshold.PER_LAYER)
    assert not pass_(model).modified and pass_.pruned == []
    for name, array in arrays(model).items():
        np.testing.assert_array_equal(array, before[name])


def test_a_sparsity_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="sparsity 1"):
        PruneMagnitude(sparsity=1.0)


def batchnorm_network(b_scales=(1.0, 0.1)) -> ir.Model:
    """x [1,1,2,2] -> Conv(w_a [2,1,1,1]) -> BatchNorm (scale 10) -> Relu -> Conv(w_b [2,2,1,1]) ->
    BatchNorm (scales `b_scales`): raw weights |a| 1, 3 and |b| 2, 4 / 5, 6, folded 10, 30 and
    2, 4 / 0.5, 0.6."""
    w_a = np.array([1.0, -3.0], np.float32).reshape(2, 1, 1, 1)
    w_b = np.array([[2.0, -4.0], [5.0, 6.0]], np.float32).reshape(2, 2, 1, 1)
    eps = 1e-5

    def bn(name, scales):
        scales = np.asarray(scales, np.float32)
        return {f"{name}_g": scales, f"{name}_b": np.zeros(2, np.float32), f"{name}_m": np.zeros(2, np.float32),
                f"{name}_v": np.full(2, 1 - eps, np.float32)}

    tensors = {"w_a": w_a, "w_b": w_b, **bn("bn_a", [10.0, 10.0]), **bn("bn_b", b_scales)}
    nodes = [helper.make_node("Conv", ["x", "w_a"], ["c1"]),
             helper.make_node("BatchNormalization", ["c1", "bn_a_g", "bn_a_b", "bn_a_m", "bn_a_v"], ["n1"],
                              epsilon=eps),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w_b"], ["c2"]),
             helper.make_node("BatchNormalization", ["c2", "bn_b_g", "bn_b_b", "bn_b_m", "bn_b_v"], ["y"],
                              epsilon=eps)]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])],
                              [numpy_helper.from_array(t, name) for name, t in tensors.items()])
    return ir.serde.deserialize_model(helper.make_model(graph, ir_version=8,
                                                        opset_imports=[helper.make_opsetid("", 17)]))


def _folded(model: ir.Model) -> dict[str, np.ndarray]:
    return {w.name: w.array for w in layer_weights(model)}


def test_magnitudes_rank_folded_or_as_trained_with_the_folded_batchnorm_divided_out():
    model = cleanup(batchnorm_network())
    a, b = _folded(model)
    assert ops(model) == ["Conv", "Relu", "Conv"]
    np.testing.assert_allclose(_folded(model)[a].reshape(-1), [10, -30], rtol=1e-5)
    np.testing.assert_allclose(_folded(model)[b].reshape(-1), [2, -4, 0.5, 0.6], rtol=1e-5)
    # by default the IR's weights as they are: global, 2 of 6, takes b's second filter (0.5 and 0.6)
    pruned = copy_model(model)
    records = prune_global(pruned, 2 / 6)
    assert [r.ranked_as_trained for r in records] == [False, False]
    assert (_folded(pruned)[b].reshape(-1) == 0).tolist() == [False, False, True, True]
    # as trained: the raw 1 and 2
    pruned = copy_model(model)
    records = prune_global(pruned, 2 / 6, magnitudes=Magnitudes.AS_TRAINED)
    assert [r.ranked_as_trained for r in records] == [True, True]
    assert (_folded(pruned)[a].reshape(-1) == 0).tolist() == [True, False]
    assert (_folded(pruned)[b].reshape(-1) == 0).tolist() == [True, False, False, False]
    # per layer, half of b, as trained: its raw 2 and 4 (folded: 0.5 and 0.6)
    pruned = copy_model(model)
    prune_layerwise(pruned, 0.5, magnitudes=Magnitudes.AS_TRAINED)
    assert (_folded(pruned)[b].reshape(-1) == 0).tolist() == [True, True, False, False]
    # a model read back from a file has no record of its folds: as trained, its weights rank as they are
    reread = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    records = prune_global(reread, 2 / 6, magnitudes=Magnitudes.AS_TRAINED)
    assert [r.ranked_as_trained for r in records] == [False, False]
    assert (_folded(reread)[b].reshape(-1) == 0).tolist() == [False, False, True, True]


def test_channel_pruning_keeps_each_fold_factor_shaped_like_its_weight():
    from qconvert.ir import fold_factors
    from qconvert.passes.prune_channels import prune_channels

    model = cleanup(batchnorm_network())
    pruned, _ = prune_channels(model, 0.5, multiple_of=1)
    weights = _folded(pruned)
    assert [w.shape for w in weights.values()] == [(1, 1, 1, 1), (2, 1, 1, 1)]  # a lost a filter, b its input
    for name, weight in weights.items():
        factor = fold_factors.factors(pruned.graph)[name]
        assert np.broadcast_shapes(factor.shape, weight.shape) == weight.shape
    [a, _] = weights
    # the kept filter of a is the stronger one (|30| folded), its factor still 10
    np.testing.assert_allclose(fold_factors.factors(pruned.graph)[a].reshape(-1), [10.0], rtol=1e-5)

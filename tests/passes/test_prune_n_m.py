"""PruneNM on tiny graphs: the N:M pattern checked group by group along each layer's reduction axis (Conv,
Gemm with and without transB, MatMul), and the weights it must leave dense, with their reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from qconvert.passes.prune_magnitude import PruneScope
from qconvert.passes.prune_n_m import PruneNM, n_m_mask, prune_n_m
from tests.passes.helpers import ops, random_inputs, run


def model(nodes, weights: dict[str, np.ndarray], x_shape, y_shape) -> ir.Model:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(w, name) for name, w in weights.items()])
    proto = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    return ir.serde.deserialize_model(proto)


def weights(seed=0, **shapes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def groups_along(array: np.ndarray, axis: int, m: int) -> np.ndarray:
    return np.moveaxis(array, axis, -1).reshape(-1, m)


def check_pattern(before: np.ndarray, after: np.ndarray, axis: int, n: int, m: int):
    """Each run of m along `axis` keeps exactly its n largest |w| and zeroes the rest."""
    for original, pruned in zip(groups_along(before, axis, m), groups_along(after, axis, m)):
        assert np.count_nonzero(pruned) == n
        kept = np.abs(original[pruned != 0])
        assert kept.min() >= np.abs(original[pruned == 0]).max()
        np.testing.assert_array_equal(pruned[pruned != 0], original[pruned != 0])


def test_2_4_along_conv_input_channels_gemm_k_and_matmul_k():
    w = weights(conv=(6, 8, 3, 3), fc=(4, 6 * 4 * 4), fc2=(4, 8), out=(8, 2))
    w["fc_b"] = np.zeros(4, np.float32)
    nodes = [helper.make_node("Conv", ["x", "conv"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["g"], transB=1),  # K is axis 1
             helper.make_node("Gemm", ["g", "fc2"], ["h"]),  # K is axis 0
             helper.make_node("MatMul", ["h", "out"], ["y"])]
    net = model(nodes, w, [1, 8, 4, 4], [1, 2])
    records = prune_n_m(net, 2, 4)
    after = {name: v.const_value.numpy() for name, v in net.graph.initializers.items()}
    check_pattern(w["conv"], after["conv"], 1, 2, 4)
    check_pattern(w["fc"], after["fc"], 1, 2, 4)
    check_pattern(w["fc2"], after["fc2"], 0, 2, 4)
    check_pattern(w["out"], after["out"], 0, 2, 4)
    assert [(r.name, r.zeros, r.dense) for r in records] == [
        ("conv", 216, None), ("fc", 192, None), ("fc2", 16, None), ("out", 8, None)]
    np.testing.assert_array_equal(after["fc_b"], w["fc_b"])
    assert ops(net) == ["Conv", "Flatten", "Gemm", "Gemm", "MatMul"]
    onnx.checker.check_model(ir.serde.serialize_model(net))
    assert run(net, random_inputs(net))[0].shape == (1, 2)


def test_the_axis_matters():
    # Along the wrong axis the pattern does not hold: the Gemm's transB weight pruned along axis 0 instead
    w = weights(seed=1, fc=(8, 8))
    mask = n_m_mask(w["fc"], 1, 2, 4)
    assert np.all(groups_along(mask, 1, 4).sum(axis=1) == 2)
    assert not np.all(groups_along(mask, 0, 4).sum(axis=1) == 2)


def test_1_4_and_ties_keep_the_earlier_weight():
    w = {"fc": np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.3, 0.3, 0.2]], np.float32).T.copy()}  # [K=4, N=2]
    net = model([helper.make_node("MatMul", ["x", "fc"], ["y"])], w, [1, 4], [1, 2])
    prune_n_m(net, 1, 4)
    after = net.graph.initializers["fc"].const_value.numpy()
    np.testing.assert_array_equal(after.T, np.array([[0.5, 0, 0, 0], [0, 0.3, 0, 0]], np.float32))


def test_layers_that_cannot_take_the_pattern_are_left_dense_with_the_reason():
    w = weights(stem=(8, 6, 3, 3), dw=(8, 1, 3, 3), pw=(4, 8, 1, 1), shared=(4, 4))
    nodes = [helper.make_node("Conv", ["x", "stem"], ["a"], pads=[1, 1, 1, 1]),  # 6 input channels
             helper.make_node("Conv", ["a", "dw"], ["b"], group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "pw"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "shared"], ["g"]),  # K on axis 0
             helper.make_node("Gemm", ["g", "shared"], ["y"], transB=1)]  # K on axis 1
    net = model(nodes, w, [1, 6, 4, 4], [1, 4])
    records = {r.name: r for r in prune_n_m(net, 2, 4, PruneScope(depthwise=True))}
    assert records["stem"].dense == "reduction length 6 (axis 1) is not a multiple of 4"
    assert records["dw"].dense == "reduction length 1 (axis 1) is not a multiple of 4"
    assert records["shared"].dense == "read along axes [0, 1] by different layers"
    assert records["pw"].dense is None and records["pw"].zeros == 16
    for name in ("stem", "dw", "shared"):
        np.testing.assert_array_equal(net.graph.initializers[name].const_value.numpy(), w[name])
        assert records[name].zeros == 0
    assert "dw" not in {r.name for r in prune_n_m(net, 2, 4)}  # out of the default scope


def test_bad_n_m_is_refused():
    with pytest.raises(ValueError, match="0 < N < M"):
        PruneNM(n=4, m=4)

"""Hand-written float IRs for the layer-wise PTQ tests (AdaRound, bias correction): every weighted op the int8
backends lower, with seeded random weights, prepared for int8 as the QDQ IR's float IR is."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as nh
import onnx_ir as ir

from qconvert.passes import prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static


def _model(nodes, inputs, outputs, initializers) -> ir.Model:
    graph = oh.make_graph(nodes, "layers", inputs, outputs, initializers)
    proto = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    return prepare_for_int8(ir.serde.deserialize_model(proto))


def every_layer(seed: int = 0) -> ir.Model:
    """[N, 4, 6, 6] -> Conv -> Relu -> depthwise Conv -> Relu -> ConvTranspose (stride 2, overlapping, so
    it stays one) -> Relu -> GlobalAveragePool -> Reshape -> Gemm (transB) -> Relu -> MatMul (no bias) -> [N, 3]."""
    rng = np.random.default_rng(seed)

    def tensor(name, *shape, scale=0.3):
        return nh.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    initializers = [tensor("w1", 8, 4, 3, 3), tensor("b1", 8, scale=0.1), tensor("w2", 8, 1, 3, 3),
                    tensor("b2", 8, scale=0.1), tensor("w3", 8, 4, 3, 3), tensor("b3", 4, scale=0.1),
                    tensor("w4", 6, 4), tensor("b4", 6, scale=0.1), tensor("w5", 6, 3),
                    nh.from_array(np.array([-1, 4], np.int64), "shape")]
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="depthwise", pads=[1, 1, 1, 1], group=8),
             oh.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             oh.make_node("ConvTranspose", ["r2", "w3", "b3"], ["c3"], name="transpose", strides=[2, 2],
                          pads=[1, 1, 1, 1], output_padding=[1, 1]),
             oh.make_node("Relu", ["c3"], ["r3"], name="relu3"),
             oh.make_node("GlobalAveragePool", ["r3"], ["p"], name="pool"),
             oh.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
             oh.make_node("Gemm", ["f", "w4", "b4"], ["g"], name="gemm", transB=1),
             oh.make_node("Relu", ["g"], ["r4"], name="relu4"),
             oh.make_node("MatMul", ["r4", "w5"], ["y"], name="matmul")]
    return _model(nodes, [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 6, 6])],
                  [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])], initializers)


def one_conv(seed: int = 0) -> ir.Model:
    """[N, 4, 6, 6] -> Conv 3x3 (bias) -> [N, 8, 6, 6], one outlier weight: per tensor, the others round
    on a coarse grid, and their rounding errors shift each channel's mean output."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((8, 4, 3, 3)) * 0.1).astype(np.float32)
    w[0, 0, 1, 1] = 3.0
    b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    nodes = [oh.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    return _model(nodes, [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 6, 6])],
                  [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 8, 6, 6])],
                  [nh.from_array(w, "w"), nh.from_array(b, "b")])


def samples(count: int, seed: int, shape=(4, 6, 6), offset: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": (rng.standard_normal((count, *shape)) + offset).astype(np.float32)}


def quantized(model: ir.Model, calib: dict[str, np.ndarray], per_channel: bool) -> ir.Model:
    return quantize_static(model, calib, QuantConfig(method="minmax", per_channel=per_channel))


def initializer_arrays(model: ir.Model) -> dict[str, np.ndarray]:
    return {name: value.const_value.numpy() for name, value in model.graph.initializers.items()}


def changed_initializers(model: ir.Model, other: ir.Model) -> set[str]:
    """The initializers whose bytes differ (the two IRs must hold the same names, shapes and dtypes)."""
    a, b = initializer_arrays(model), initializer_arrays(other)
    assert sorted(a) == sorted(b)
    assert all((a[n].dtype, a[n].shape) == (b[n].dtype, b[n].shape) for n in a)
    return {n for n in a if a[n].tobytes() != b[n].tobytes()}


def dead_channel_depthwise(seed: int = 0) -> ir.Model:
    """[N, 4, 6, 6] -> depthwise Conv 3x3 (bias) -> Relu -> [N, 4, 6, 6] whose channel 0 weights are 300
    times the others': a BatchNorm folded over a channel that only ever sees zeros (`dead_samples`)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 1, 3, 3)) * 0.3).astype(np.float32)
    w[0] *= 300.0
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    nodes = [oh.make_node("Conv", ["x", "w", "b"], ["c"], name="depthwise", pads=[1, 1, 1, 1], group=4),
             oh.make_node("Relu", ["c"], ["y"], name="relu")]
    return _model(nodes, [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 6, 6])],
                  [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 6, 6])],
                  [nh.from_array(w, "w"), nh.from_array(b, "b")])


def dead_samples(count: int, seed: int) -> dict[str, np.ndarray]:
    """Samples for dead_channel_depthwise: channel 0 always zero."""
    feeds = samples(count, seed)
    feeds["x"][:, 0] = 0.0
    return feeds

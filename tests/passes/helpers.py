"""Shared checks for pass tests: build tiny models from text, compare them in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import onnx_ir as ir
import onnxruntime as ort

DYNAMIC_DIM = 2  # the size given to symbolic or unknown dims when making inputs


def parse(text: str) -> ir.Model:
    return ir.serde.deserialize_model(onnx.parser.parse_model(text))


def ops(model: ir.Model) -> list[str]:
    return [node.op_type for node in model.graph]


def random_inputs(model: ir.Model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.inputs:
        if value.is_initializer():
            continue
        shape = [d if isinstance(d, int) else DYNAMIC_DIM for d in value.shape]
        dtype = value.type.dtype.numpy()
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def run(model: ir.Model | onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    proto = model if isinstance(model, onnx.ModelProto) else ir.serde.serialize_model(model)
    options = ort.SessionOptions()
    # onnxruntime would otherwise fold BatchNormalization itself, hiding our mistakes.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def _signature(values) -> list[tuple]:
    def dims(shape):
        if shape is None:
            return None
        return tuple(d if isinstance(d, int) else d.value for d in shape)

    return [(v.name, dims(v.shape)) for v in values]


def check_pass_keeps_io(model: ir.Model, pass_, atol: float = 1e-5) -> ir.passes.PassResult:
    """Run ``pass_`` on ``model``; assert same I/O names and shapes and same outputs (abs atol)."""
    before = ir.serde.serialize_model(model)
    inputs, outputs = _signature(model.graph.inputs), _signature(model.graph.outputs)
    feeds = random_inputs(model)
    expected = run(before, feeds)

    result = pass_(model)
    after = result.model
    assert _signature(after.graph.inputs) == inputs
    assert _signature(after.graph.outputs) == outputs
    onnx.checker.check_model(ir.serde.serialize_model(after))
    for name, want, got in zip([o.name for o in after.graph.outputs], expected, run(after, feeds)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=name)
    return result

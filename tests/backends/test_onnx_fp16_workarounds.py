"""onnx-fp16 files that onnxruntime's default session survives: fp16 Transpose -> MatMul (ViT attention)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from qconvert.backends.onnx.emit import emit_fp16
from qconvert.backends.onnx.fp16_workarounds import cast_before_transpose_into_matmul

RUN_DEFAULT_SESSION = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])  # default: ORT_ENABLE_ALL
x = np.random.default_rng(0).standard_normal((2, 17, 64)).astype(session.get_inputs()[0].type == "tensor(float16)" and np.float16 or np.float32)
np.save(sys.argv[2], session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float32))
"""


def _sequence_first_matmul(dtype) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((64, 48)).astype(dtype), "w")
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]), helper.make_node("MatMul", ["t", "w"], ["y"])],
        "g", [helper.make_tensor_value_info("x", elem, ["N", 17, 64])], [helper.make_tensor_value_info("y", elem, None)],
        [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run_in_child(path, tmp_path) -> tuple[int, np.ndarray | None]:
    out = tmp_path / "y.npy"
    code = subprocess.run([sys.executable, "-c", RUN_DEFAULT_SESSION, str(path), str(out)], capture_output=True).returncode
    return code, np.load(out) if code == 0 else None


def test_rewrite_keeps_the_function_and_the_fp16_weight(tmp_path):
    model = _sequence_first_matmul(np.float16)
    assert cast_before_transpose_into_matmul(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Cast", "Transpose", "Cast", "MatMul", "Cast"]
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT16
    path = tmp_path / "fixed.onnx"
    onnx.save(model, str(path))
    code, y = _run_in_child(path, tmp_path)
    assert code == 0
    x = np.random.default_rng(0).standard_normal((2, 17, 64)).astype(np.float16).astype(np.float32)
    w = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float32)
    np.testing.assert_allclose(y, (x.transpose(1, 0, 2) @ w).astype(np.float16).astype(np.float32), rtol=2e-3, atol=2e-2)


def test_onnx_fp16_of_a_sequence_first_matmul_opens_in_a_default_session(tmp_path):
    path = tmp_path / "model.fp16.onnx"
    emit_fp16(ir.serde.deserialize_model(_sequence_first_matmul(np.float32)), path)
    code, y = _run_in_child(path, tmp_path)
    assert code == 0, f"onnxruntime exited with {code}"
    assert y.shape == (17, 2, 48)

"""A model's outputs keep their order and names in every artifact, read by position through each runtime's
own API, and io.json records them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from qconvert.backends.targets import IRVariant, all_targets
from tests.passes.helpers import parse

# Names that sort differently from their order, and shapes that tell the outputs apart.
OUTPUTS = [("zeta", (4, 4, 8, 8)), ("alpha", (4, 2)), ("mid", (4, 3, 8, 8))]
FLOAT_TARGETS = [name for name, t in all_targets().items() if t.consumes is IRVariant.FLOAT]


@pytest.fixture(scope="module")
def three_outputs(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = ", ".join(f"{v:.5f}" for v in rng.standard_normal(4 * 3 * 3 * 3) * 0.3)
    g = ", ".join(f"{v:.5f}" for v in rng.standard_normal(3 * 2))
    model = parse(f"""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 3, 8, 8] x) => (float[N, 4, 8, 8] zeta, float[N, 2] alpha, float[N, 3, 8, 8] mid)
          <float[4, 3, 3, 3] w = {{{w}}}, float[3, 2] g = {{{g}}}> {{
            zeta = Conv<pads=[1, 1, 1, 1]>(x, w)
            pooled = GlobalAveragePool(x)
            flat = Flatten(pooled)
            alpha = MatMul(flat, g)
            mid = Relu(x)
        }}
    """)
    import onnx_ir as ir

    path = tmp_path_factory.mktemp("three") / "three.onnx"
    onnx.save(ir.serde.serialize_model(model), path)
    return path


def _by_position(target: str, path: str, x: np.ndarray) -> list[np.ndarray]:
    if target.startswith("onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == [name for name, _ in OUTPUTS]
        return session.run(None, {"x": x})
    if target.startswith("tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        details = interpreter.get_output_details()
        assert [d["name"] for d in details] == [name for name, _ in OUTPUTS]
        # The signature's keys are the same names (LiteRT lists them sorted: it keeps them in a map).
        assert set(interpreter.get_signature_list()["serving_default"]["outputs"]) == {n for n, _ in OUTPUTS}
        return [interpreter.get_tensor(d["index"]) for d in details]
    import torch

    return [o.float().numpy() for o in torch.jit.load(path)(torch.from_numpy(x))]


@pytest.fixture(scope="module")
def converted(three_outputs, tmp_path_factory):
    from qconvert.api import convert

    out = tmp_path_factory.mktemp("three_out")
    return convert(str(three_outputs), to=FLOAT_TARGETS, out_dir=out, parity_samples=4, runs=1, warmup=0), out


@pytest.mark.parametrize("target", FLOAT_TARGETS)
def test_outputs_keep_order_and_names(converted, target):
    result, out = converted
    row = result.row(target)
    assert row.status == "ok", row.error
    contract = json.loads((out / (row.path.split("/")[-1] + ".io.json")).read_text())
    assert [p["name"] for p in contract["outputs"]] == [name for name, _ in OUTPUTS]
    assert [p["index"] for p in contract["outputs"]] == [0, 1, 2]
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    outputs = _by_position(target, row.path, x)
    assert [tuple(o.shape) for o in outputs] == [shape for _, shape in OUTPUTS]
    np.testing.assert_allclose(outputs[2], np.maximum(x, 0), atol=1e-2)  # mid, where it belongs


def test_integer_tflite_keeps_the_order_too(three_outputs, tmp_path):
    """The same outputs with MaxPool for the Relu (a lone Relu has no int8 placement yet: issue #13)."""
    from ai_edge_litert.interpreter import Interpreter

    from qconvert.api import convert

    model = onnx.load(three_outputs)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "MaxPool"
    relu.attribute.extend([onnx.helper.make_attribute("kernel_shape", [2, 2]),
                           onnx.helper.make_attribute("strides", [2, 2])])
    mid = next(o for o in model.graph.output if o.name == "mid")
    mid.type.tensor_type.shape.dim[2].dim_value = mid.type.tensor_type.shape.dim[3].dim_value = 4
    path = tmp_path / "pooled.onnx"
    onnx.save(model, path)
    result = convert(str(path), to=["tflite-int8"], out_dir=tmp_path, calib="random", parity_samples=4,
                     runs=1, warmup=0)
    row = result.row("tflite-int8")
    assert row.status == "ok", row.error
    contract = json.loads((tmp_path / "pooled.int8.tflite.io.json").read_text())
    assert [p["name"] for p in contract["outputs"]] == [name for name, _ in OUTPUTS]
    shapes = [tuple(d["shape_signature"][1:]) for d in Interpreter(model_path=row.path).get_output_details()]
    assert shapes == [(4, 8, 8), (2,), (3, 4, 4)]

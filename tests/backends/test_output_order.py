"""A model's outputs keep their order and names in every artifact, read by position through each runtime's
own API, and io.json records them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from qconvert.backends.targets import all_targets
from tests.passes.helpers import parse

# Names that sort differently from their order, and shapes that tell the outputs apart.
OUTPUTS = [("zeta", (4, 4, 8, 8)), ("alpha", (4, 2)), ("mid", (4, 3, 8, 8))]
FLOAT_TARGETS = [name for name, t in all_targets().items() if t.quantization is None or t.quantization == "dynamic"]


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

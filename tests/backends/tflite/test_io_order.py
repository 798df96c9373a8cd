"""The .tflite keeps the IR's input and output order and names (the converter sorts them by key)."""

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from tests.backends.tflite.helpers import model, run_tflite
from tests.passes.helpers import run

# Names that sort (box, landmarks, score) and (a_shift, x) differently from their order; shapes tell
# the outputs apart.
THREE_OUTPUTS = """
g (float[N, 4] x, float[N, 2] a_shift, int64[1] axis) => (float[N, 1] score, float[N, 4] box,
                                                          float[N, 10] landmarks) {
    score = ReduceSum <keepdims = 1> (x, axis)
    box = Relu(x)
    landmarks = Concat <axis = 1> (x, x, a_shift)
}
"""
ORDER = ["score", "box", "landmarks"]


def test_outputs_keep_order_and_names(tmp_path):
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32),
             "a_shift": rng.standard_normal((3, 2)).astype(np.float32)}
    for mode in ("fp32", "fp16", "dynamic"):
        source = model(THREE_OUTPUTS, {"axis": np.array([1], np.int64)})
        flatbuffer, facts = convert(source, mode, EmitOptions(), f"tflite-{mode}")
        interpreter = Interpreter(model_content=flatbuffer)
        # By position: the subgraph's inputs and outputs are the IR's, in its order, with its names.
        assert [d["name"] for d in interpreter.get_output_details()] == ORDER
        assert [tuple(d["shape"][1:]) for d in interpreter.get_output_details()] == [(1,), (4,), (10,)]
        assert [d["name"] for d in interpreter.get_input_details()] == ["x", "a_shift"]
        assert [p["signature"] for p in facts["outputs"]] == ORDER
        # By name: the signature's keys are the IR's names and each one reads its own tensor.
        runner = interpreter.get_signature_runner()
        assert sorted(runner.get_output_details()) == sorted(ORDER)
        results = runner(**feeds)
        expected = dict(zip(ORDER, run(source, feeds)))
        for name in ORDER:
            np.testing.assert_allclose(results[name], expected[name], atol=1e-2)
        for want, got in zip(expected.values(), run_tflite(flatbuffer, facts, feeds, tmp_path)):
            np.testing.assert_allclose(got, want, atol=1e-2)

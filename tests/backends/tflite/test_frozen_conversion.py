"""emit.converter_for converts the program's frozen function instead of a SavedModel written and read back:
the file computes the same, with the same ops, inputs and outputs, and the signature restore_io gives it
holds the IR's names in the IR's order."""

from __future__ import annotations

import numpy as np

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import configure, converter_for
from qconvert.backends.tflite.program import build_program
from qconvert.backends.tflite.signature import restore_io
from qconvert.passes.pipelines import prepare_for_tflite
from tests.passes.helpers import parse

MODEL = """
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[2, 3, 8, 8] x, float[2, 5] extra) => (float[2, 3, 8, 8] zeta, float[2, 5] alpha)
      <float[3, 3, 1, 1] w = {0.5, -1, 2, 0.25, 1, -0.5, 1, 1, 1}> {
        zeta = Conv(x, w)
        alpha = Sigmoid(extra)
    }
"""


def _file(program, lower_to_saved_model: bool) -> bytes:
    converter = converter_for(program)
    converter.experimental_lower_to_saved_model = lower_to_saved_model
    configure(converter, "fp32")
    return restore_io(converter.convert(), program.inputs, program.outputs)


def _run(flatbuffer: bytes, feeds: dict[str, np.ndarray]):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], feeds[detail["name"]])
    interpreter.invoke()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    inputs = [(d["name"], d["shape"].tolist()) for d in interpreter.get_input_details()]
    outputs = [(d["name"], d["shape"].tolist()) for d in interpreter.get_output_details()]
    values = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return ops, inputs, outputs, interpreter.get_signature_list(), values


def test_frozen_function_file_matches_the_saved_model_one():
    program = build_program(prepare_for_tflite(parse(MODEL)), EmitOptions().io_layout, "tflite-fp32")
    assert converter_for(program).experimental_lower_to_saved_model is False
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 3, 8, 8), dtype=np.float32),
             "extra": rng.standard_normal((2, 5), dtype=np.float32)}
    frozen, saved = _run(_file(program, False), feeds), _run(_file(program, True), feeds)
    assert frozen[:4] == saved[:4]
    assert [name for name, _ in frozen[2]] == ["zeta", "alpha"]  # the IR's order, not sorted
    assert set(frozen[3]["serving_default"]["outputs"]) == {"zeta", "alpha"}
    for got, want in zip(frozen[4], saved[4]):
        np.testing.assert_array_equal(got, want)

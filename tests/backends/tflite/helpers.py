"""One-node IRs run through onnxruntime and through the emitted .tflite, and transpose counting."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert.interpreter import Interpreter

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from qconvert.backends.tflite.runtime import LiteRTSession
from qconvert.ir.metadata import set_meta
from tests.passes.helpers import parse, random_inputs, run

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'


def model(body: str, constants: dict[str, np.ndarray] | None = None, opset: int = 18) -> ir.Model:
    """A graph from onnx text; graph inputs named in ``constants`` become initializers."""
    result = parse(HEADER.replace("18", str(opset)) + "\n" + body.replace(" <>", ""))
    for name, array in (constants or {}).items():
        value = next(v for v in result.graph.inputs if v.name == name)
        result.graph.inputs.remove(value)
        value.const_value = ir.tensor(np.asarray(array))
        result.graph.register_initializer(value)
    return result


def weights(*shape: int, seed: int = 1, scale: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def keras_style(source: ir.Model) -> ir.Model:
    """The same graph as tf2onnx writes a Keras model: NHWC 4-D inputs and outputs, recorded as NHWC,
    with a Transpose to NCHW after each input and back to NHWC before each output."""
    graph = source.graph
    layouts = {}
    first = next(iter(graph))
    for index, value in enumerate(list(graph.inputs)):
        if len(value.shape) != 4:
            continue
        n, c, h, w = value.shape
        nhwc = ir.Value(name=f"{value.name}_nhwc", shape=ir.Shape([n, h, w, c]), type=value.type)
        to_nchw = ir.node("Transpose", [nhwc], {"perm": [0, 3, 1, 2]}, name=f"{value.name}_to_nchw")
        ir.convenience.replace_all_uses_with(value, to_nchw.outputs[0])
        to_nchw.outputs[0].name = f"{value.name}_nchw"
        graph.inputs[index] = nhwc
        graph.insert_before(first, to_nchw)
        layouts[nhwc.name] = "NHWC"
    for index, value in enumerate(list(graph.outputs)):
        if value.shape is None or len(value.shape) != 4:
            continue
        to_nhwc = ir.node("Transpose", [value], {"perm": [0, 2, 3, 1]}, name=f"{value.name}_to_nhwc")
        to_nhwc.outputs[0].name = f"{value.name}_nhwc"
        graph.append(to_nhwc)
        graph.outputs[index] = to_nhwc.outputs[0]
    set_meta(source, "input_layouts", layouts)
    return source


def op_names(flatbuffer: bytes) -> list[str]:
    return [op["op_name"] for op in Interpreter(model_content=flatbuffer)._get_ops_details()]


def run_tflite(flatbuffer: bytes, facts: dict, feeds: dict[str, np.ndarray], tmp_path) -> list[np.ndarray]:
    path = tmp_path / "model.tflite"
    path.write_bytes(flatbuffer)
    session = LiteRTSession(str(path), facts, "cpu", 1)
    return session.finish(session.run(session.prepare(feeds)))


def check(source: ir.Model, tmp_path, atol: float = 1e-5, feeds: dict | None = None, io_layout: str | None = None,
          mode: str = "fp32") -> list[str]:
    """Outputs of the .tflite equal onnxruntime's within atol; returns the .tflite's op names."""
    feeds = feeds or random_inputs(source)
    expected = run(source, feeds)
    flatbuffer, facts = convert(source, mode, EmitOptions(io_layout=io_layout), f"tflite-{mode}")
    actual = run_tflite(flatbuffer, facts, feeds, tmp_path)
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    return op_names(flatbuffer)


def check_both_layouts(body: str, constants: dict | None, tmp_path, atol: float = 1e-5, opset: int = 18) -> None:
    """As an NCHW (PyTorch-like) graph, and as a Keras-like NHWC one, which must need no TRANSPOSE."""
    check(model(body, constants, opset), tmp_path, atol)
    ops = check(keras_style(model(body, constants, opset)), tmp_path, atol)
    assert "TRANSPOSE" not in ops, ops

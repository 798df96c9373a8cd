"""tflite-int8/uint8 op by op, on QDQ graphs quantized by hand (by_hand.py) as the plan places QDQ:
each op becomes the one integer TFLite kernel it should, with exactly the IR's scales (fixed output
scales read back from the file), and computes what onnxruntime computes on the same QDQ IR; what TFLite
cannot run on integers is refused at emit time, naming the op."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite import quantized
from qconvert.backends.tflite.runtime import LiteRTSession
from qconvert.errors import UnsupportedOpError
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.report.metrics import sqnr_db
from tests.backends.tflite_int8.by_hand import by_hand
from tests.passes.helpers import run

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'
RNG = np.random.default_rng(7)
UNIT, HALF = (1 / 256, -128), (1 / 128, 0)  # LOGISTIC/SOFTMAX and TANH output grids (int8)


def array(*shape, scale=0.3) -> str:
    values = RNG.standard_normal(shape).astype(np.float32) * scale
    return "{" + ",".join(f"{v:.6f}" for v in values.reshape(-1)) + "}"


def graph(signature: str, initializers: str, body: str) -> str:
    return f"{HEADER}g {signature} <{initializers}> {{\n{body}\n}}" if initializers else \
        f"{HEADER}g {signature} {{\n{body}\n}}"


CONV = f"float[4,4,3,3] w = {array(4, 4, 3, 3)}, float[4] b = {array(4)}"


def convert(model, io: str = "int8"):
    flatbuffer, facts = quantized.convert(model, io, EmitOptions(), f"tflite-{io}")
    return flatbuffer, facts, quantized.inspect_flatbuffer(flatbuffer)


def op_names(inspection) -> list[str]:
    """The file's ops, sorted (the converter picks the order of independent ops)."""
    return sorted(op["op"] for op in inspection["ops"])


def agreement(model, flatbuffer, facts, tmp_path) -> list[tuple[float, float]]:
    """(SQNR dB, largest difference in output steps) of each output against onnxruntime on the QDQ IR."""
    path = tmp_path / "m.tflite"
    path.write_bytes(flatbuffer)
    feeds = random_feeds(specs_from_ir(model), 8, 11)
    session = LiteRTSession(str(path), facts, "cpu", 1)
    got = session.finish(session.run(session.prepare(feeds)))
    found = []
    for port, g, want in zip(facts["io"]["outputs"], got, run(model, feeds)):
        assert g.shape == want.shape
        found.append((sqnr_db(want, g), float(np.max(np.abs(g - want))) / port["scale"]))
    return found


def assert_full_integer(inspection, facts):
    assert not [op["op"] for op in inspection["ops"] if op["float"]]
    assert quantized.inner_requantize(inspection) == []
    assert facts["quantization"]["float_ops"] == []


def output_grid(inspection, kernel: str) -> tuple[float, int]:
    """The (scale, zero point) of the output of the file's only `kernel` op."""
    [op] = [op for op in inspection["ops"] if op["op"] == kernel]
    tensor = inspection["tensors"][op["outputs"][0]]
    return tensor["scales"][0], tensor["zero_points"][0]


CASES = {
    # name: (float graph, activations with QDQ, shared-scale groups, fixed grids, int8 constants, file ops)
    "residual add": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        y = Add(c, x)"""), ["x", "c", "y"], [], {}, [], ["TRANSPOSE", "CONV_2D", "ADD", "TRANSPOSE"]),
    "add relu": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        a = Add(c, x)
        y = Relu(a)"""), ["x", "c", "y"], [], {}, [], ["TRANSPOSE", "CONV_2D", "ADD", "TRANSPOSE"]),
    "squeeze-excitation": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)",
                                 f"float[4,4,1,1] w = {array(4, 4, 1, 1)}, float[4] b = {array(4)}", """
        p = GlobalAveragePool(x)
        c = Conv (p, w, b)
        s = Sigmoid(c)
        y = Mul(x, s)"""), ["x", "p", "c", "s", "y"], [["x", "p"]], {"s": UNIT}, [],
        ["TRANSPOSE", "MEAN", "CONV_2D", "LOGISTIC", "MUL", "TRANSPOSE"]),
    "hard-sigmoid gate": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)",
                                f"float[4,4,1,1] w = {array(4, 4, 1, 1)}, float[4] b = {array(4)}", """
        p = GlobalAveragePool(x)
        c = Conv (p, w, b)
        s = HardSigmoid <alpha=0.16666667> (c)
        y = Mul(x, s)"""), ["x", "p", "c", "s", "y"], [["x", "p"]], {}, [],
        ["TRANSPOSE", "MEAN", "CONV_2D", "ADD", "MUL", "MUL", "TRANSPOSE"]),
    "hard-swish": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        y = HardSwish(c)"""), ["x", "c", "y"], [], {}, [], ["TRANSPOSE", "CONV_2D", "HARD_SWISH", "TRANSPOSE"]),
    "silu": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        s = Sigmoid(c)
        y = Mul(c, s)"""), ["x", "c", "s", "y"], [], {"s": UNIT}, [],
        ["TRANSPOSE", "CONV_2D", "LOGISTIC", "MUL", "TRANSPOSE"]),
    "tanh": (graph("(float[1,16] x) => (float[1,16] y)", "", "y = Tanh(x)"), ["x", "y"], [], {"y": HALF}, [],
             ["TANH"]),
    "softmax head": (graph("(float[2,10] x) => (float[2,10] y)",
                           f"float[10,10] w = {array(10, 10)}, float[10] b = {array(10)}", """
        c = Gemm <transB=1> (x, w, b)
        y = Softmax <axis=-1> (c)"""), ["x", "c", "y"], [], {"y": UNIT}, [], ["FULLY_CONNECTED", "SOFTMAX"]),
    "softmax over classes of a detector head": (graph("(float[1,2,16] x) => (float[1,2,16] y)", "", """
        y = Softmax <axis=1> (x)"""), ["x", "y"], [], {"y": UNIT}, [], ["TRANSPOSE", "SOFTMAX", "TRANSPOSE"]),
    "channel softmax of a conv": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        y = Softmax <axis=1> (c)"""), ["x", "c", "y"], [], {"y": UNIT}, [],
        ["TRANSPOSE", "CONV_2D", "SOFTMAX", "TRANSPOSE"]),
    "pad and mean": (graph("(float[1,4,8,8] x) => (float[1,4] y)", "int64[8] pads = {0,0,1,1,0,0,1,1}", """
        p = Pad <mode="constant"> (x, pads)
        y = ReduceMean <keepdims=0, axes=[2,3]> (p)"""), ["x", "p", "y"], [["x", "p", "y"]], {}, [],
        ["PAD", "MEAN"]),
    "split slice concat": (graph("(float[1,4,8,8] x) => (float[1,6,8,8] y)",
                                 "int64[2] sizes = {1,3}, int64[1] start = {1}, int64[1] end = {3}, int64[1] axis = {1}", """
        a, b = Split <axis=1> (x, sizes)
        c = Slice(x, start, end, axis)
        y = Concat <axis=1> (a, b, c)"""), ["x", "a", "b", "c", "y"], [["x", "a", "b", "c", "y"]], {}, [],
        ["SPLIT_V", "STRIDED_SLICE", "CONCATENATION"]),
    "resize": (graph("(float[1,4,8,8] x) => (float[1,4,16,16] y, float[1,4,16,16] z)", "float[4] scales = {1,1,2,2}", """
        y = Resize <mode="linear"> (x, , scales)
        z = Resize <mode="nearest"> (x, , scales)"""), ["x", "y", "z"], [["x", "y", "z"]], {}, [],
        ["TRANSPOSE", "RESIZE_BILINEAR", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE"]),
    "depthwise relu6": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)",
                              f"float[4,1,3,3] w = {array(4, 1, 3, 3)}, float[4] b = {array(4)}, float lo = {{0.0}}, "
                              "float hi = {6.0}", """
        c = Conv <pads=[1,1,1,1], group=4> (x, w, b)
        y = Clip(c, lo, hi)"""), ["x", "y"], [], {}, [], ["TRANSPOSE", "DEPTHWISE_CONV_2D", "TRANSPOSE"]),
    # MobileNetV3's dilated last blocks (LRASPP, DeepLabV3), batch dynamic as exported
    "dilated depthwise": (graph("(float[N,4,6,6] x) => (float[N,4,6,6] y)",
                                f"float[4,1,5,5] w = {array(4, 1, 5, 5)}, float[4] b = {array(4)}", """
        y = Conv <pads=[4,4,4,4], group=4, dilations=[2,2]> (x, w, b)"""), ["x", "y"], [], {}, [],
        ["TRANSPOSE", "DEPTHWISE_CONV_2D", "TRANSPOSE"]),
    "grouped conv": (graph("(float[1,8,8,8] x) => (float[1,8,8,8] y)",
                           f"float[8,2,3,3] w = {array(8, 2, 3, 3)}, float[8] b = {array(8)}", """
        c = Conv <pads=[1,1,1,1], group=4> (x, w, b)
        y = Relu(c)"""), ["x", "y"], [], {}, [], ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]),
    "rescaling at the input": (graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)",
                                     f"{CONV}, float k = {{0.0078431}}, float o = {{-1.0}}", """
        m = Mul(x, k)
        a = Add(m, o)
        y = Conv <pads=[1,1,1,1]> (a, w, b)"""), ["x", "m", "a", "y"], [], {}, ["k", "o"],
        ["MUL", "ADD", "TRANSPOSE", "CONV_2D", "TRANSPOSE"]),
    "leaky relu and max pool": (graph("(float[1,4,8,8] x) => (float[1,4,4,4] y)", "", """
        a = LeakyRelu <alpha=0.1> (x)
        y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (a)"""), ["x", "a", "y"], [["a", "y"]], {}, [],
        ["LEAKY_RELU", "TRANSPOSE", "MAX_POOL_2D", "TRANSPOSE"]),
}
# Bilinear resizing rounds its interpolation differently in LiteRT's kernel than onnxruntime's: a step.
SQNR_FLOOR = {"resize": 40.0}


@pytest.mark.parametrize("name", list(CASES))
def test_each_op_is_one_integer_kernel_with_the_irs_scales(name, tmp_path):
    text, activations, shared, fixed, constants, expected = CASES[name]
    model = by_hand(text, activations, shared=shared, fixed=fixed, constants=constants)
    flatbuffer, facts, inspection = convert(model)
    assert op_names(inspection) == sorted(expected)
    assert_full_integer(inspection, facts)
    assert facts["quantization"]["scales_checked"] >= len(activations) - 1
    assert facts["quantization"]["weight_scales_match_ir"]
    for db, steps in agreement(model, flatbuffer, facts, tmp_path):
        assert db >= SQNR_FLOOR.get(name, 45.0) and steps <= 1.0 + 1e-4


@pytest.mark.parametrize("name", ["squeeze-excitation", "hard-sigmoid gate", "softmax over classes of a detector head",
                                  "split slice concat"])
def test_uint8_io_and_a_uint8_ir(name, tmp_path):
    text, activations, shared, fixed, constants, expected = CASES[name]
    shifted = {k: (s, zp + 128) for k, (s, zp) in fixed.items()}
    for dtype, grids in (("int8", fixed), ("uint8", shifted)):
        model = by_hand(text, activations, shared=shared, fixed=grids, constants=constants, dtype=dtype)
        flatbuffer, facts, inspection = convert(model, "uint8")
        assert op_names(inspection) == sorted(["QUANTIZE", *expected, "QUANTIZE"])
        assert_full_integer(inspection, facts)
        assert {p["dtype"] for p in facts["io"]["inputs"] + facts["io"]["outputs"]} == {"uint8"}
        for db, steps in agreement(model, flatbuffer, facts, tmp_path):
            assert db >= 45.0 and steps <= 1.0 + 1e-4


@pytest.mark.parametrize("name, kernel, grid", [("squeeze-excitation", "LOGISTIC", UNIT), ("tanh", "TANH", HALF),
                                                ("softmax head", "SOFTMAX", UNIT)])
def test_fixed_output_scales_are_read_back_from_the_file(name, kernel, grid):
    text, activations, shared, fixed, constants, _ = CASES[name]
    model = by_hand(text, activations, shared=shared, fixed=fixed, constants=constants)
    _, facts, inspection = convert(model)
    assert output_grid(inspection, kernel) == (pytest.approx(grid[0], rel=1e-7), grid[1])
    [listed] = facts["quantization"]["fixed_by_kernel"]
    assert listed.startswith(kernel) and f"zero point {grid[1]}" in listed


def test_a_calibrated_scale_where_the_kernel_fixes_one_is_refused():
    """The face detector's softmax head: without the plan's fixed scale the file could not hold the IR's."""
    text, activations, shared, _, constants, _ = CASES["softmax head"]
    model = by_hand(text, activations, shared=shared, constants=constants)
    with pytest.raises(ValueError, match="SOFTMAX output .* the scale its kernel fixes"):
        convert(model)


def test_weights_and_constants_carry_the_irs_scales():
    text, activations, shared, fixed, constants, _ = CASES["depthwise relu6"]
    model = by_hand(text, activations, shared=shared, fixed=fixed, constants=constants)
    _, _, inspection = convert(model)
    [conv] = [op for op in inspection["ops"] if op["op"] == "DEPTHWISE_CONV_2D"]
    data, weight, bias = (inspection["tensors"][i] for i in conv["inputs"])
    [ir_scales] = quantized.ir_weight_scales(model)
    np.testing.assert_allclose(weight["scales"], ir_scales, rtol=1e-6)  # one per channel
    np.testing.assert_allclose(bias["scales"], data["scales"][0] * ir_scales, rtol=1e-5)


def test_prelu_is_one_prelu_kernel(tmp_path):
    text = graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)",
                 f"{CONV}, float[4,1,1] slope = {{0.1, 0.2, 0.25, 0.3}}", """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        y = PRelu(c, slope)""")
    model = by_hand(text, ["x", "c", "y"], constants=["slope"])
    flatbuffer, facts, inspection = convert(model)
    assert op_names(inspection) == sorted(["TRANSPOSE", "CONV_2D", "PRELU", "TRANSPOSE"])
    [prelu] = [op for op in inspection["ops"] if op["op"] == "PRELU"]
    assert inspection["tensors"][prelu["inputs"][1]]["scales"] == pytest.approx([0.3 / 127])  # the IR's slope scale
    for db, steps in agreement(model, flatbuffer, facts, tmp_path):
        assert db >= 45.0 and steps <= 1.0 + 1e-4


@pytest.mark.parametrize("body, initializers, activations, message", [
    ("y = Neg(x)", "", ["x", "y"], "op Neg .TFLite has no integer kernel"),
    ("y = Resize <mode=\"cubic\"> (x, , s)", "float[4] s = {1,1,2,2}", ["x", "y"], "op Resize .cubic"),
    ("y = Clip(x, lo, hi)", "float lo = {-2.0}, float hi = {3.0}", ["x", "y"], r"op Clip .Clip to \(-2.0, 3.0\)"),
    ("r = Relu(x)\n y = Mul(x, r)", "", ["x", "y"], "op Relu .the QDQ IR leaves its output float"),
])
def test_what_tflite_cannot_run_on_integers_is_refused_naming_the_op(body, initializers, activations, message):
    out = "float[1,4,16,16] y" if "Resize" in body else "float[1,4,8,8] y"
    model = by_hand(graph(f"(float[1,4,8,8] x) => ({out})", initializers, body), activations)
    with pytest.raises(UnsupportedOpError, match=message) as error:
        convert(model)
    assert "tflite-int8" in str(error.value) and "\n" not in str(error.value)


def _kept_float(activations):
    from qconvert.ir.metadata import set_meta

    text = graph("(float[1,4,8,8] x) => (float[1,4,8,8] y)", CONV, """
        c = Conv <pads=[1,1,1,1]> (x, w, b)
        y = Relu(c)""")
    model = by_hand(text, activations)
    for node in model.graph:
        if node.op_type == "Conv":
            node.name = "kept"
            node.replace_input_with(1, model.graph.initializers["w"])  # float weights, as mixed precision
            node.replace_input_with(2, model.graph.initializers["b"])  # leaves them
    set_meta(model, "quantization", {"float_layers": ["kept"]})
    return model


def test_a_layer_kept_float_runs_float_and_is_reported():
    model = _kept_float(["x"])
    flatbuffer, facts = quantized.convert(model, "int8", EmitOptions(), "tflite-int8")
    assert facts["quantization"]["float_layers"] == ["kept"]
    assert "CONV_2D" in facts["quantization"]["float_ops"]  # with the output TRANSPOSE after it
    [conv] = [op for op in quantized.inspect_flatbuffer(flatbuffer)["ops"] if op["op"] == "CONV_2D"]
    assert conv["float"]


def test_a_layer_kept_float_between_qdq_is_refused():
    """The converter would quantize it (it quantizes whatever sits between fake-quant ops)."""
    with pytest.raises(UnsupportedOpError, match="op Conv .kept float by mixed precision"):
        quantized.convert(_kept_float(["x", "y"]), "int8", EmitOptions(), "tflite-int8")

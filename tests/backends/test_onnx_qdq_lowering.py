"""onnx-qdq writes the IR's QDQ in the form onnxruntime fuses into integer kernels, with the same integers."""

from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from qconvert.backends.onnx.qdq_lowering import lower_for_onnxruntime
from qconvert.passes import cleanup, prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from tests.passes.helpers import parse

RNG = np.random.default_rng(0)


def const(name, *shape, scale=0.3):
    values = ", ".join(f"{v:.6f}" for v in RNG.standard_normal(shape).ravel() * scale)
    return f"float[{','.join(map(str, shape))}] {name} = {{{values}}}"


def tiny_unet() -> ir.Model:
    """One level of a UNet: the skip tensor (a Relu output) feeds both the MaxPool and the Concat whose
    other input, the 2x2/stride-2 upsampler's output, goes negative; one shared scale for the Concat."""
    inits = [const("W1", 8, 3, 3, 3), const("B1", 8), const("W2", 8, 8, 3, 3), const("B2", 8),
             const("WT", 8, 8, 2, 2), const("BT", 8), const("W3", 4, 16, 3, 3), const("B3", 4)]
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 16, 16] x) => (float[N, 4, 16, 16] y) <{', '.join(inits)}> {{
            c1 = Conv<pads = [1, 1, 1, 1]>(x, W1, B1)
            skip = Relu(c1)
            down = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(skip)
            c2 = Conv<pads = [1, 1, 1, 1]>(down, W2, B2)
            r2 = Relu(c2)
            up = ConvTranspose<strides = [2, 2]>(r2, WT, BT)
            joined = Concat<axis = 1>(up, skip)
            c3 = Conv<pads = [1, 1, 1, 1]>(joined, W3, B3)
            y = Sigmoid(c3)
        }}
    """)


def session(model: ir.Model, optimize: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def quantized():
    graph = prepare_for_int8(cleanup(tiny_unet()))
    feeds = {"x": RNG.standard_normal((64, 3, 16, 16)).astype(np.float32)}
    return quantize_static(graph, feeds, QuantConfig()), {"x": feeds["x"][:8]}


def test_lowering_keeps_the_integers(quantized):
    qdq, feeds = quantized
    lowered = lower_for_onnxruntime(qdq)
    np.testing.assert_array_equal(session(lowered, False).run(None, feeds)[0], session(qdq, False).run(None, feeds)[0])


def test_onnxruntime_runs_every_layer_in_integers(quantized, tmp_path):
    qdq, feeds = quantized
    lowered = lower_for_onnxruntime(qdq)
    ops = Counter(n.op_type for n in lowered.graph)
    assert ops["DepthToSpace"] == 0 and ops["Max"] == 1  # the skip Relu with a zero point above the minimum
    zero_points = {n.inputs[2].const_value.numpy().dtype for n in lowered.graph if n.op_type == "QuantizeLinear"}
    assert zero_points == {np.dtype(np.uint8)}

    def optimized(model):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)

    fused = optimized(lowered)
    # Only the model's input is quantized and its output dequantized; no float Conv, MaxPool or Concat.
    assert fused["QuantizeLinear"] == 1 and fused["DequantizeLinear"] == 1
    # Four layers, and three interleaving 1x1 convs: the convs reading the input and the Concat-scaled
    # skip tensors (zero points above 0) get their inputs interleaved with zero-point channels.
    assert fused["QLinearConv"] == 4 + 3 and fused["QLinearConcat"] == 1 and fused["NhwcMaxPool"] == 1
    assert not {"Conv", "FusedConv", "ConvTranspose", "DepthToSpace", "Concat", "MaxPool"} & set(fused)
    # The IR as written leaves the upsampler, the skip Conv, MaxPool and Concat in float.
    assert {"FusedConv", "DepthToSpace"} <= set(optimized(qdq))
    reference = session(qdq, False).run(None, feeds)[0]
    assert sqnr_db(reference, session(lowered, True).run(None, feeds)[0]) > 35


def test_relu6_sharing_a_concat_scale_runs_as_integers(tmp_path):
    """Clip(0, 6) whose output shares a scale with a wider, negative branch: both bounds fall inside the
    integer range, so the lowering writes Max and Min on the integers and the Conv stays a QLinearConv."""
    inits = [const("W1", 4, 3, 3, 3, scale=2.0), const("W2", 4, 3, 3, 3, scale=4.0), const("W3", 2, 8, 1, 1)]
    model = parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 8, 8] x) => (float[N, 2, 8, 8] y) <{', '.join(inits)}, float low = {{0.0}},
                                                          float high = {{6.0}}> {{
            c1 = Conv<pads = [1, 1, 1, 1]>(x, W1)
            six = Clip(c1, low, high)
            wide = Conv<pads = [1, 1, 1, 1]>(x, W2)
            joined = Concat<axis = 1>(six, wide)
            y = Conv(joined, W3)
        }}
    """)
    feeds = {"x": RNG.standard_normal((32, 3, 8, 8)).astype(np.float32)}
    qdq = quantize_static(prepare_for_int8(cleanup(model)), feeds, QuantConfig())
    lowered = lower_for_onnxruntime(qdq)
    assert Counter(n.op_type for n in lowered.graph)["Clip"] == 0
    assert {"Max", "Min"} <= {n.op_type for n in lowered.graph}
    small = {"x": feeds["x"][:4]}
    np.testing.assert_array_equal(session(lowered, False).run(None, small)[0], session(qdq, False).run(None, small)[0])
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(ir.serde.serialize_model(lowered).SerializeToString(), options,
                         providers=["CPUExecutionProvider"])
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    # Three layers and two interleaving convs (x, read by two layers, once; the Concat's signed output).
    assert fused["QLinearConv"] == 3 + 2 and not {"Conv", "FusedConv", "Clip"} & set(fused)


def rgb_conv(outputs: int, channels: int = 3) -> ir.Model:
    inits = [const("W", outputs, channels, 3, 3), const("B", outputs)]
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 20]>
        g (float[N, {channels}, 8, 8] x) => (float[N, {outputs}, 8, 8] y) <{', '.join(inits)}> {{
            r = Relu(x)
            c = Conv<pads = [1, 1, 1, 1]>(r, W, B)
            y = Relu(c)
        }}
    """)


def test_rgb_input_gets_a_zero_point_channel_and_keeps_the_integers():
    """3 input channels: onnxruntime's fast symmetric conv needs a multiple of 4, so the lowering pads a
    channel of the zero point with zero weights; the outputs stay bit-identical. A hidden post-ReLU
    tensor (a graph input is interleaved instead, rewrite 6, which pads as it goes)."""
    feeds = {"x": RNG.standard_normal((16, 3, 8, 8)).astype(np.float32)}
    qdq = quantize_static(prepare_for_int8(cleanup(rgb_conv(16))), feeds, QuantConfig())
    lowered = lower_for_onnxruntime(qdq)
    pads = [n for n in lowered.graph if n.op_type == "Pad"]
    assert len(pads) == 1 and pads[0].inputs[2].const_value.numpy().dtype == np.uint8
    conv = next(n for n in lowered.graph if n.op_type == "Conv")
    weights = conv.inputs[1].producer().inputs[0].const_value.numpy()
    assert weights.shape == (16, 4, 3, 3) and not weights[:, 3].any()
    assert conv.inputs[0].producer().inputs[0] is pads[0].outputs[0]
    np.testing.assert_array_equal(session(lowered, False).run(None, feeds)[0], session(qdq, False).run(None, feeds)[0])
    # Fused: the padded layer runs the symmetric conv kernel, the unpadded one im2col + GEMM, whose
    # requantizations may round a tie apart; on CPUs without VNNI, a post-ReLU input can also saturate a
    # rare int16 pair sum (qdq_lowering rewrite 6).
    step = qdq.graph.outputs[0].producer().inputs[1].const_value.numpy()
    off = np.abs(session(lowered, True).run(None, feeds)[0] - session(qdq, False).run(None, feeds)[0]) / step
    assert (off > 1.01).mean() < 1e-3


def test_image_inputs_are_interleaved():
    """Pixels in [0, 1] (zero point 0) spread their codes over the whole range, as a signed input does."""
    feeds = {"x": RNG.uniform(0, 1, (16, 4, 8, 8)).astype(np.float32)}
    model = parse(f"""
        <ir_version: 8, opset_import: ["" : 20]>
        g (float[N, 4, 8, 8] x) => (float[N, 16, 8, 8] y) <{const("W", 16, 4, 3, 3)}> {{
            y = Conv<pads = [1, 1, 1, 1]>(x, W)
        }}
    """)
    qdq = quantize_static(prepare_for_int8(cleanup(model)), feeds, QuantConfig())
    lowered = lower_for_onnxruntime(qdq)
    assert sum(n.name.endswith("_interleave") for n in lowered.graph) == 1
    np.testing.assert_array_equal(session(lowered, False).run(None, feeds)[0], session(qdq, False).run(None, feeds)[0])


@pytest.mark.parametrize("outputs, channels", [(8, 3), (16, 4), (20, 3)])
def test_no_channel_padding_where_the_kernel_would_not_take_it(outputs, channels):
    """Fewer than 16 or not a multiple of 8 output channels, or channels already a multiple of 4."""
    feeds = {"x": RNG.standard_normal((16, channels, 8, 8)).astype(np.float32)}
    qdq = quantize_static(prepare_for_int8(cleanup(rgb_conv(outputs, channels))), feeds, QuantConfig())
    assert "Pad" not in {n.op_type for n in lower_for_onnxruntime(qdq).graph}


def signed_input_conv(channels: int) -> ir.Model:
    """Conv of a zero-centred input with full-range int8 weights: on x86 CPUs without VNNI, onnxruntime's
    u8×s8 kernel saturates its int16 pair sums here unless the lowering interleaves the input."""
    weights = RNG.integers(-127, 128, (32, channels, 3, 3)).astype(np.float32) * 0.01
    inits = [f"float[32,{channels},3,3] W = {{{', '.join(f'{v:.2f}' for v in weights.ravel())}}}"]
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, {channels}, 8, 8] x) => (float[N, 32, 8, 8] y) <{', '.join(inits)}> {{
            y = Conv<pads = [1, 1, 1, 1]>(x, W)
        }}
    """)


@pytest.mark.parametrize("channels", [3, 16])
def test_signed_inputs_are_exact_in_the_fused_kernels(channels):
    graph = prepare_for_int8(cleanup(signed_input_conv(channels)))
    feeds = {"x": RNG.uniform(-1, 1, (64, channels, 8, 8)).astype(np.float32)}
    qdq = quantize_static(graph, feeds, QuantConfig(method="minmax"))
    lowered = lower_for_onnxruntime(qdq)
    assert sum(n.name.endswith("_interleave") for n in lowered.graph) == 1
    reference = session(qdq, False).run(None, feeds)[0]
    np.testing.assert_array_equal(session(lowered, False).run(None, feeds)[0], reference)
    scale = next(n.inputs[1].const_value.numpy() for n in qdq.graph if n.op_type == "QuantizeLinear"
                 and n.inputs[0].producer() is not None and n.inputs[0].producer().op_type == "Conv")
    steps = np.abs(session(lowered, True).run(None, feeds)[0] - reference) / scale
    assert steps.max() <= 1.01  # requantization rounding only; a saturated pair is off by many steps


def test_post_relu_inputs_keep_their_layout():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4, 8, 8] x) => (float[N, 16, 8, 8] y) <float[16,4,1,1] W = {%s}> {
            r = Relu(x)
            y = Conv(r, W)
        }
    """ % ", ".join("0.1" for _ in range(64)))
    feeds = {"x": RNG.standard_normal((16, 4, 8, 8)).astype(np.float32)}
    lowered = lower_for_onnxruntime(quantize_static(prepare_for_int8(cleanup(model)), feeds, QuantConfig()))
    assert not any(n.name.endswith("_interleave") for n in lowered.graph)


def test_emit_reports_what_onnxruntime_runs_in_float(quantized, tmp_path):
    """The facts list the float compute ops of onnxruntime's optimized graph: none for the full-int8 UNet;
    the layer mixed precision keeps float when one is excluded."""
    from qconvert.backends.onnx.emit import emit_qdq

    qdq, _ = quantized
    assert emit_qdq(qdq, tmp_path / "all.onnx")["quantization"]["float_ops"] == []
    graph = prepare_for_int8(cleanup(tiny_unet()))
    feeds = {"x": RNG.standard_normal((16, 3, 16, 16)).astype(np.float32)}
    from qconvert.quant.plan import layer_name

    last = [layer_name(n) for n in graph.graph if n.op_type == "Conv"][-1]
    mixed = quantize_static(graph, feeds, QuantConfig(), exclude={last})
    float_ops = emit_qdq(mixed, tmp_path / "mixed.onnx")["quantization"]["float_ops"]
    assert [op.split()[0] for op in float_ops] == ["Conv"]

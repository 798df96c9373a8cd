"""torch-int8 lowerings, one pattern at a time: hand-written QDQ graphs (QuantizeLinear/DequantizeLinear around
each op, int8 per-channel weights, int32 biases at s_in·s_w) run by torch's int8 kernels and by onnxruntime
(the reference QDQ semantics, no fusions); the two agree within one output quantization step."""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.torch.helpers import emit_and_run
from tests.passes.helpers import parse, random_inputs, run


def qdq(value: str, scale: str) -> str:
    """value -> QuantizeLinear -> DequantizeLinear (value_d) at the initializers `scale` and `scale`z."""
    return f"{value}_q = QuantizeLinear ({value}, {scale}, {scale}z)\n {value}_d = DequantizeLinear ({value}_q, {scale}, {scale}z)\n"


def scales(**values: tuple[float, int]) -> str:
    return ", ".join(f"float {name} = {{{s}}}, int8 {name}z = {{{z}}}" for name, (s, z) in values.items())


def weights(name: str, shape: tuple[int, ...], seed: int, in_scale: float, per_tensor: bool = False
            ) -> tuple[str, str]:
    """An int8 weight per output channel (or per tensor: one scale and no axis attribute, as qconvert's
    quantizer writes it, where DequantizeLinear's axis is its default 1) and its int32 bias (scale s_in·s_w)
    as initializers, and the DQ lines."""
    rng = np.random.default_rng(seed)
    out = shape[0]
    q = rng.integers(-127, 128, size=int(np.prod(shape)))
    w_scale = rng.uniform(0.002, 0.01, size=out)
    if per_tensor:
        w_scale = np.full(out, w_scale[0])
    bias = rng.integers(-300, 300, size=out)
    dims = ", ".join(map(str, shape))
    weight_scale = (f"float {name}s = {{{w_scale[0]:.6g}}}, int8 {name}z = {{0}}" if per_tensor else
                    f"float[{out}] {name}s = {{{', '.join(f'{v:.6g}' for v in w_scale)}}}, "
                    f"int8[{out}] {name}z = {{{', '.join(['0'] * out)}}}")
    inits = (f"int8[{dims}] {name}q = {{{', '.join(map(str, q))}}}, {weight_scale}, "
             f"int32[{out}] {name}bq = {{{', '.join(map(str, bias))}}}, "
             f"float[{out}] {name}bs = {{{', '.join(f'{float(np.float32(v) * np.float32(in_scale)):.9g}' for v in w_scale)}}}, "
             f"int32[{out}] {name}bz = {{{', '.join(['0'] * out)}}}")
    weight_axis = "" if per_tensor else " <axis=0>"
    lines = (f"{name} = DequantizeLinear{weight_axis} ({name}q, {name}s, {name}z)\n"
             f" {name}b = DequantizeLinear <axis=0> ({name}bq, {name}bs, {name}bz)\n")
    return inits, lines


def model(body: str, inputs: str, outputs: str, inits: str, opset: int = 17) -> str:
    return f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g ({inputs}) => ({outputs}) <{inits}> {{
      {body}
    }}
    """


def check(text: str, kernels: dict[str, int], out_scale: float, tmp_path, seed: int = 1, spread: float = 1.0,
          exact: float = 0.9) -> dict:
    """torch-int8 against onnxruntime: the asked int8 kernels, no float fallback, within one output step."""
    graph = parse(text)
    feeds = {k: v * spread for k, v in random_inputs(graph, seed=seed).items()}
    expected = run(graph, feeds)
    actual, facts = emit_and_run(graph, "torch-int8", feeds, tmp_path)
    quantization = facts["quantization"]
    assert quantization["float_fallbacks"] == {}
    assert {k: quantization["int8_kernels"].get(k) for k in kernels} == kernels
    for ours, reference in zip(actual, expected):
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= out_scale * 1.0001
        assert np.mean(np.isclose(ours, reference, atol=out_scale * 1e-3)) >= exact
    return quantization


X = "float[N, 4, 8, 8] x"


def conv_clip(low: float, high: float, out: tuple[float, int], op: str = "Clip") -> str:
    inits, lines = weights("w", (6, 4, 3, 3), seed=3, in_scale=0.03)
    activation = "r = Relu (c)" if op == "Relu" else "r = Clip (c, lo, hi)"
    return model(qdq("x", "sx") + lines + f"c = Conv <pads=[1,1,1,1]> (x_d, w, wb)\n {activation}\n" + qdq("r", "so")
                 + "y = Identity (r_d)", X, "float[N, 6, 8, 8] y",
                 f"{inits}, {scales(sx=(0.03, 0), so=out)}, float lo = {{{low}}}, float hi = {{{high}}}")


@pytest.mark.parametrize("low, high, out", [
    (0.0, 6.0, (6 / 255, -128)),  # Relu6 calibrated to [0, 6]: the saturation does it
    (0.0, 6.0, (0.004, -128)),  # high bound past the grid: the fused Relu
    (0.0, 0.5, (0.004, -128)),  # high bound inside the grid: a quantized clamp after the kernel
    (-0.2, 0.3, (0.004, 0)),  # both bounds inside
])
def test_conv_with_clip_is_one_int8_unit(low, high, out, tmp_path):
    check(conv_clip(low, high, out), {"Conv": 1}, out[0], tmp_path, spread=3.0)


def test_conv_relu_still_fuses(tmp_path):
    check(conv_clip(0, 0, (0.01, -128), op="Relu"), {"Conv": 1}, 0.01, tmp_path, spread=3.0)


@pytest.mark.parametrize("group", [1, 4])
def test_conv_with_per_tensor_weights_runs_in_int8(group, tmp_path):
    """A per-tensor weight's DequantizeLinear has no axis (its default, 1, means nothing for one scale)."""
    inits, lines = weights("w", (4, 4 // group, 3, 3), seed=6, in_scale=0.03, per_tensor=True)
    text = model(qdq("x", "sx") + lines + f"c = Conv <group={group}, pads=[1,1,1,1]> (x_d, w, wb)\n"
                 + qdq("c", "so") + "y = Identity (c_d)", X, "float[N, 4, 8, 8] y",
                 f"{inits}, {scales(sx=(0.03, 0), so=(0.01, -5))}")
    check(text, {"Conv": 1}, 0.01, tmp_path, spread=2.0)


def test_depthwise_conv_per_channel_with_asymmetric_pads(tmp_path):
    inits, lines = weights("w", (4, 1, 3, 3), seed=4, in_scale=0.03)
    text = model(qdq("x", "sx") + lines + "c = Conv <group=4, pads=[0,0,1,1], strides=[2,2]> (x_d, w, wb)\n"
                 + qdq("c", "so") + "y = Identity (c_d)", X, "float[N, 4, 4, 4] y",
                 f"{inits}, {scales(sx=(0.03, 3), so=(0.005, -10))}")
    check(text, {"Conv": 1}, 0.005, tmp_path, spread=2.0)


@pytest.mark.parametrize("activation", ["", "Relu", "Clip"])
def test_residual_add(activation, tmp_path):
    inits, lines = weights("w", (4, 4, 3, 3), seed=5, in_scale=0.03)
    tail = "a = Add (c_d, x_d)\n"
    tail += {"": "", "Relu": "r = Relu (a)\n", "Clip": "r = Clip (a, lo, hi)\n"}[activation]
    last = "r" if activation else "a"
    text = model(qdq("x", "sx") + lines + "c = Conv <pads=[1,1,1,1]> (x_d, w, wb)\n" + qdq("c", "sc") + tail
                 + qdq(last, "so") + f"y = Identity ({last}_d)", X, "float[N, 4, 8, 8] y",
                 f"{inits}, {scales(sx=(0.03, 0), sc=(0.02, 5), so=(0.04, -128 if activation else 0))}, "
                 "float lo = {0.0}, float hi = {6.0}")
    check(text, {"Add": 1, "Conv": 1}, 0.04, tmp_path, spread=2.0)


def test_squeeze_excitation_mul_and_silu(tmp_path):
    """SE: GlobalAveragePool -> Sigmoid (1/256) -> Mul broadcast over H, W; SiLU: x · Sigmoid(x)."""
    text = model(qdq("x", "sx") + "p = GlobalAveragePool (x_d)\n" + qdq("p", "sp") + "g = Sigmoid (p_d)\n"
                 + qdq("g", "sg") + "m = Mul (x_d, g_d)\n" + qdq("m", "sm") + "s = Sigmoid (m_d)\n" + qdq("s", "sg")
                 + "t = Mul (m_d, s_d)\n" + qdq("t", "so") + "y = Identity (t_d)", X, "float[N, 4, 8, 8] y",
                 scales(sx=(0.03, 0), sp=(0.004, -3), sg=(1 / 256, -128), sm=(0.02, 1), so=(0.015, -20)))
    check(text, {"GlobalAveragePool": 1, "Sigmoid": 2, "Mul": 2}, 0.015, tmp_path, spread=2.0)


@pytest.mark.parametrize("op, out", [
    ("HardSwish", (0.02, -100)),
    ("LeakyRelu <alpha=0.1>", (0.02, 10)),
    ("Elu", (0.02, 10)),
    ("Sigmoid", (1 / 256, -128)),
    ("Sigmoid", (0.005, -110)),  # another grid than the kernel's fixed one: requantized
    ("Tanh", (1 / 128, 0)),
    ("HardSigmoid <alpha=0.16666667>", (1 / 256, -128)),
    ("Softmax <axis=1>", (1 / 256, -128)),
    ("Relu", (0.03, -128)),
])
def test_activation_runs_int8(op, out, tmp_path):
    name = op.split()[0]
    text = model(qdq("x", "sx") + f"a = {op} (x_d)\n" + qdq("a", "so") + "y = Identity (a_d)", X,
                 "float[N, 4, 8, 8] y", scales(sx=(0.03, 0), so=out))
    check(text, {name: 1}, out[0], tmp_path, spread=1.5)


@pytest.mark.parametrize("between", [True, False])
def test_keras_hard_swish_as_x_times_hard_sigmoid(between, tmp_path):
    """With a QDQ between HardSigmoid and Mul: two kernels; without: torch's one hardswish."""
    body = qdq("x", "sx") + "h = HardSigmoid <alpha=0.16666667, beta=0.5> (x_d)\n"
    body += (qdq("h", "sh") + "m = Mul (x_d, h_d)\n") if between else "m = Mul (x_d, h)\n"
    text = model(body + qdq("m", "so") + "y = Identity (m_d)", X, "float[N, 4, 8, 8] y",
                 scales(sx=(0.03, 0), sh=(1 / 256, -128), so=(0.02, -100)))
    kernels = {"HardSigmoid": 1, "Mul": 1} if between else {"HardSwish": 1}
    check(text, kernels, 0.02, tmp_path, spread=1.5)


@pytest.mark.parametrize("slope", ["float[1] sl = {0.25}", "float[4, 1, 1] sl = {0.25, -0.1, 0.5, 0.02}"])
def test_prelu(slope, tmp_path):
    text = model(qdq("x", "sx") + "a = PRelu (x_d, sl)\n" + qdq("a", "so") + "y = Identity (a_d)", X,
                 "float[N, 4, 8, 8] y", f"{scales(sx=(0.03, 0), so=(0.02, 0))}, {slope}")
    # Per channel, the slopes are rounded onto a grid that holds 1.0 (what torch's kernel needs): within a
    # step, more often off by one than one slope's leaky_relu.
    check(text, {"PRelu": 1}, 0.02, tmp_path, spread=1.5, exact=0.8 if "[4, 1, 1]" in slope else 0.9)


@pytest.mark.parametrize("op, out_shape", [
    ("GlobalAveragePool", "float[N, 4, 1, 1] y"),
    ("ReduceMean <axes=[2, 3], keepdims=0>", "float[N, 4] y"),
])
@pytest.mark.parametrize("out", [(0.004, 2), (0.05, 0)])  # its own (finer) grid, the plan's same scale
def test_means_round_once_on_the_output_grid(op, out_shape, out, tmp_path):
    text = model(qdq("x", "sx") + f"p = {op} (x_d)\n" + qdq("p", "so") + "y = Identity (p_d)", X, out_shape,
                 scales(sx=(0.05, 0), so=out))
    check(text, {op.split()[0]: 1}, out[0], tmp_path)


def test_add_of_a_quantized_constant(tmp_path):
    """The plan's HardSwish as (x + 3) -> Clip(0, 6) -> · x / 6: the constants are int8 per tensor."""
    text = model(qdq("x", "sx") + "t = DequantizeLinear (tq, ts, tz)\n a = Add (x_d, t)\n r = Clip (a, lo, hi)\n"
                 + qdq("r", "sr") + "m = Mul (x_d, r_d)\n" + qdq("m", "sm") + "y = Identity (m_d)", X,
                 "float[N, 4, 8, 8] y", f"{scales(sx=(0.03, 0), sr=(6 / 255, -128), sm=(0.05, -40))}, int8 tq = {{127}}, "
                 "float ts = {0.023622047}, int8 tz = {0}, float lo = {0.0}, float hi = {6.0}")
    check(text, {"Add": 1, "Mul": 1}, 0.05, tmp_path, spread=1.5)


MOVES = {
    "Pad": ("p = Pad (x_d, pads, pv)", "float[N, 4, 10, 9] y", "int64[8] pads = {0, 0, 1, 0, 0, 0, 1, 1}, float pv = {0.0}"),
    "Pad reflect": ("p = Pad <mode=\"reflect\"> (x_d, pads)", "float[N, 4, 10, 10] y",
                    "int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}"),
    "Slice": ("p = Slice (x_d, st, en, ax)", "float[N, 2, 8, 4] y",
              "int64[2] st = {1, 0}, int64[2] en = {3, 4}, int64[2] ax = {1, 3}"),
    "Slice step": ("p = Slice (x_d, st, en, ax, sp)", "float[N, 4, 4, 8] y",
                   "int64[1] st = {0}, int64[1] en = {8}, int64[1] ax = {2}, int64[1] sp = {2}"),
    "Resize nearest": ("p = Resize <mode=\"nearest\"> (x_d, , rs)", "float[N, 4, 16, 16] y",
                       "float[4] rs = {1, 1, 2, 2}"),
    "Resize bilinear": ("p = Resize <mode=\"linear\", coordinate_transformation_mode=\"half_pixel\"> (x_d, , rs)",
                        "float[N, 4, 16, 16] y", "float[4] rs = {1, 1, 2, 2}"),
    "MaxPool": ("p = MaxPool <kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]> (x_d)", "float[N, 4, 4, 4] y", ""),
    "GlobalMaxPool": ("p = GlobalMaxPool (x_d)", "float[N, 4, 1, 1] y", ""),
    "AveragePool": ("p = AveragePool <kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]> (x_d)",
                    "float[N, 4, 4, 4] y", ""),
    "AveragePool padded": ("p = AveragePool <kernel_shape=[3,3], pads=[1,1,1,1], count_include_pad=1> (x_d)",
                           "float[N, 4, 8, 8] y", ""),
}


@pytest.mark.parametrize("case", list(MOVES))
def test_same_scale_op_on_the_quantized_tensor(case, tmp_path):
    line, out_shape, extra = MOVES[case]
    inits = scales(sx=(0.03, 7)) + (", " + extra if extra else "")
    text = model(qdq("x", "sx") + line + "\n" + qdq("p", "sx") + "y = Identity (p_d)", X, out_shape, inits)
    check(text, {case.split()[0]: 1}, 0.03, tmp_path, spread=2.0)


def test_split_then_concat_requantizes_into_the_output_grid(tmp_path):
    text = model(qdq("x", "sx") + "a, b = Split <axis=1> (x_d, sizes)\n" + qdq("a", "sx") + qdq("b", "sx")
                 + "s = Sigmoid (b_d)\n" + qdq("s", "sg") + "c = Concat <axis=1> (s_d, a_d)\n" + qdq("c", "so")
                 + "y = Identity (c_d)", X, "float[N, 4, 8, 8] y",
                 f"{scales(sx=(0.03, 0), sg=(1 / 256, -128), so=(0.02, -60))}, int64[2] sizes = {{1, 3}}")
    check(text, {"Split": 1, "Concat": 1, "Sigmoid": 1}, 0.02, tmp_path, spread=2.0)


def test_plan_rules_are_what_the_lowering_reads():
    """Every op the plan gives its input's scale runs on quantized tensors here, and every activation it
    fuses into a layer is absorbed by the kernels (no list of its own)."""
    from qconvert.backends.torch.ops import quantized
    from qconvert.backends.torch.registry import int8_kernel_ops
    from qconvert.quant.plan import FUSED_ACTIVATIONS, SAME_SCALE

    assert SAME_SCALE <= int8_kernel_ops()
    assert quantized.FUSED_ACTIVATIONS is FUSED_ACTIVATIONS

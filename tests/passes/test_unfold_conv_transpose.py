import numpy as np
import pytest

from qconvert.passes.unfold_conv_transpose import UnfoldConvTranspose
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'
RNG = np.random.default_rng(0)


def const(name, *shape):
    values = ", ".join(f"{v:.6f}" for v in RNG.uniform(-1, 1, shape).ravel())
    return f"float[{','.join(map(str, shape))}] {name} = {{{values}}}"


def model(node: str, out_shape: str, c_in=3, c_out=4, k=2, bias=True, in_hw="5, 6"):
    inits = [const("W", c_in, c_out, k, k)] + ([const("B", c_out)] if bias else [])
    return parse(HEADER + f"g (float[N, {c_in}, {in_hw}] x) => (float[{out_shape}] y) <{', '.join(inits)}> "
                          f"{{ {node} }}")


@pytest.mark.parametrize("k, bias", [(2, True), (2, False), (3, True)])
def test_non_overlapping_windows_become_conv_and_depth_to_space(k, bias):
    m = model(f"y = ConvTranspose<strides = [{k}, {k}]>(x, W{', B' if bias else ''})",
              f"N, 4, {5 * k}, {6 * k}", k=k, bias=bias)
    result = check_pass_keeps_io(m, UnfoldConvTranspose())
    assert result.modified and ops(result.model) == ["Conv", "DepthToSpace"]
    depth = result.model.graph.node(1)
    assert depth.attributes.get_string("mode") == "DCR" and depth.attributes.get_int("blocksize") == k
    conv = result.model.graph.node(0)
    assert list(conv.inputs[1].const_value.numpy().shape) == [k * k * 4, 3, 1, 1]


@pytest.mark.parametrize("node, out_shape", [
    ("y = ConvTranspose<strides = [1, 1]>(x, W, B)", "N, 4, 6, 7"),  # windows overlap
    ("y = ConvTranspose<strides = [2, 2], pads = [1, 1, 0, 0]>(x, W, B)", "N, 4, 9, 11"),
    ("y = ConvTranspose<strides = [2, 2], output_padding = [1, 1]>(x, W, B)", "N, 4, 11, 13"),
    ("y = ConvTranspose<strides = [2, 2], dilations = [2, 2]>(x, W, B)", "N, 4, 10, 12"),
])
def test_other_transposed_convolutions_are_left_alone(node, out_shape):
    result = check_pass_keeps_io(model(node, out_shape), UnfoldConvTranspose())
    assert not result.modified and ops(result.model) == ["ConvTranspose"]


def test_grouped_is_left_alone():
    m = parse(HEADER + f"g (float[N, 4, 5, 6] x) => (float[N, 4, 10, 12] y) <{const('W', 4, 2, 2, 2)}> "
                       "{ y = ConvTranspose<strides = [2, 2], group = 2>(x, W) }")
    result = check_pass_keeps_io(m, UnfoldConvTranspose())
    assert not result.modified


@pytest.mark.parametrize("attrs, k", [
    ('auto_pad = "SAME_UPPER"', 2),   # SAME with the kernel equal to the stride pads nothing
    ('auto_pad = "VALID"', 2),
    ("output_shape = [10, 12]", 2),   # the default output size
    ("dilations = [2, 2]", 3),        # a 2x2 kernel dilated by 2 spans 3 pixels: stride 3
])
def test_padding_resolved_to_nothing_and_dilations_unfold_too(attrs, k):
    weight_k = 2
    m = model(f"y = ConvTranspose<strides = [{k}, {k}], {attrs}>(x, W, B)", f"N, 4, {5 * k}, {6 * k}", k=weight_k)
    result = check_pass_keeps_io(m, UnfoldConvTranspose())
    assert result.modified and ops(result.model) == ["Conv", "DepthToSpace"]
    assert result.model.graph.node(1).attributes.get_int("blocksize") == k


@pytest.mark.parametrize("node, out_shape", [
    ("y = ConvTranspose(x, W1, B)", "N, 4, 5, 6"),  # 1x1: nothing to unfold (and DepthToSpace takes blocks >= 2)
    ('y = ConvTranspose<strides = [2, 2], auto_pad = "SAME_UPPER", output_padding = [1, 1]>(x, W, B)',
     "N, 4, 11, 13"),
    ("y = ConvTranspose<strides = [2, 2], output_shape = [9, 11]>(x, W, B)", "N, 4, 9, 11"),  # cropped
])
def test_padded_or_1x1_transposed_convolutions_are_left_alone(node, out_shape):
    m = parse(HEADER + f"g (float[N, 3, 5, 6] x) => (float[{out_shape}] y) "
                       f"<{const('W', 3, 4, 2, 2)}, {const('W1', 3, 4, 1, 1)}, {const('B', 4)}> {{ {node} }}")
    result = check_pass_keeps_io(m, UnfoldConvTranspose(split_groups=True, runtime_bias=True))
    assert not result.modified and ops(result.model) == ["ConvTranspose"]


def test_output_shape_of_an_unknown_input_size_is_left_alone():
    m = parse(HEADER + f"g (float[N, 3, H, W] x) => (float[N, 4, 10, 12] y) <{const('W', 3, 4, 2, 2)}> "
                       "{ y = ConvTranspose<strides = [2, 2], output_shape = [10, 12]>(x, W) }")
    assert not UnfoldConvTranspose()(m).modified


@pytest.mark.parametrize("bias", [True, False])
def test_split_groups_unfolds_each_group(bias):
    inits = [const("W", 4, 2, 2, 2)] + ([const("B", 4)] if bias else [])
    m = parse(HEADER + f"g (float[N, 4, 5, 6] x) => (float[N, 4, 10, 12] y) <{', '.join(inits)}> "
                       f"{{ y = ConvTranspose<strides = [2, 2], group = 2>(x, W{', B' if bias else ''}) }}")
    result = check_pass_keeps_io(m, UnfoldConvTranspose(split_groups=True))
    assert ops(result.model) == ["Split", "Conv", "DepthToSpace", "Conv", "DepthToSpace", "Concat"] + (
        ["Add"] if bias else [])


def test_runtime_bias_is_tiled_when_asked():
    text = HEADER + f"g (float[N, 3, 5, 6] x, float[4] b) => (float[N, 4, 10, 12] y) <{const('W', 3, 4, 2, 2)}> " \
                    "{ y = ConvTranspose<strides = [2, 2]>(x, W, b) }"
    assert not UnfoldConvTranspose()(parse(text)).modified
    result = check_pass_keeps_io(parse(text), UnfoldConvTranspose(runtime_bias=True))
    assert ops(result.model) == ["Tile", "Conv", "DepthToSpace"]

"""Conv, ConvTranspose and pooling: NCHW graphs and their Keras-like NHWC twins against onnxruntime."""

import pytest

from tests.backends.tflite.helpers import check, check_both_layouts, keras_style, model, weights


def layer(op: str, attributes: str, w_shape, out_channels: int, x_shape: str, y: str, bias: bool):
    """A one-node graph of a weighted layer, and its constants."""
    inputs = f"float[{x_shape}] x, float[{','.join(map(str, w_shape))}] w"
    inputs += f", float[{out_channels}] b" if bias else ""
    args = "x, w, b" if bias else "x, w"
    body = f"g ({inputs}) => (float[{y}] y) {{ y = {op} <{attributes}> ({args}) }}"
    return body, {"w": weights(*w_shape)} | ({"b": weights(out_channels, seed=2)} if bias else {})


def conv(attributes: str, w_shape, x_shape="N, 4, 9, 9", y="N, C, H, W", bias=True):
    return layer("Conv", attributes, w_shape, w_shape[0], x_shape, y, bias)


CONVS = {
    "3x3 same": conv("pads = [1, 1, 1, 1]", (6, 4, 3, 3)),
    "stride 2": conv("pads = [1, 1, 1, 1], strides = [2, 2]", (6, 4, 3, 3)),
    "asymmetric pads": conv("pads = [0, 1, 2, 0]", (6, 4, 3, 3)),
    "dilated": conv("pads = [2, 2, 2, 2], dilations = [2, 2]", (6, 4, 3, 3)),
    "grouped": conv("pads = [1, 1, 1, 1], group = 2", (6, 2, 3, 3)),
    "depthwise": conv("pads = [1, 1, 1, 1], group = 4", (4, 1, 3, 3)),
    "depthwise x2 stride 2": conv("pads = [1, 1, 1, 1], group = 4, strides = [2, 2]", (8, 1, 3, 3)),
    "depthwise dilated": conv("pads = [2, 2, 2, 2], group = 4, dilations = [2, 2]", (4, 1, 3, 3)),
    "depthwise dilated, valid": conv("group = 4, dilations = [3, 3]", (4, 1, 3, 3)),
    "auto_pad same_upper": conv('auto_pad = "SAME_UPPER", strides = [2, 2]', (6, 4, 3, 3)),
    "auto_pad same_lower": conv('auto_pad = "SAME_LOWER", strides = [2, 2]', (6, 4, 2, 2)),
    "1x1 no bias": conv("", (6, 4, 1, 1), bias=False),
    "rectangular kernel": conv("pads = [0, 2, 0, 2]", (6, 4, 1, 5)),
}


@pytest.mark.parametrize("case", CONVS)
def test_conv(case, tmp_path):
    body, constants = CONVS[case]
    check_both_layouts(body, constants, tmp_path, atol=2e-5)


def test_conv1d(tmp_path):
    body, constants = conv("pads = [1, 2], strides = [2]", (6, 4, 4), x_shape="N, 4, 11", y="N, C, L")
    check(model(body, constants), tmp_path, atol=2e-5)


def conv_transpose(attributes: str, w_shape, bias=True):
    return layer("ConvTranspose", attributes, w_shape, w_shape[1], "N, 4, 5, 5", "N, C, H, W", bias)


TRANSPOSED = {
    "2x2 stride 2 (upsampler)": conv_transpose("strides = [2, 2]", (4, 3, 2, 2)),
    "4x4 stride 2 pad 1": conv_transpose("strides = [2, 2], pads = [1, 1, 1, 1]", (4, 3, 4, 4)),
    "3x3 stride 2 output_padding": conv_transpose("strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 1]",
                                                  (4, 3, 3, 3)),
    "3x3 stride 1 no bias": conv_transpose("", (4, 3, 3, 3), bias=False),
    "output_shape": conv_transpose("strides = [2, 2], output_shape = [10, 10]", (4, 3, 3, 3)),
    "1x1": conv_transpose("", (4, 3, 1, 1)),  # was unfolded into a DEPTH_TO_SPACE of block 1, which TF refuses
}

# The unfolded upsamplers (qconvert.passes.unfold_conv_transpose in the TFLite preparation): a 1x1 CONV_2D and
# DEPTH_TO_SPACE with static shapes, where TRANSPOSE_CONV computes its output size at run time.
UNFOLDED = {
    "2x2 stride 2": (conv_transpose("strides = [2, 2]", (4, 3, 2, 2)), ["CONV_2D", "DEPTH_TO_SPACE"]),
    "SAME_UPPER": (conv_transpose('strides = [2, 2], auto_pad = "SAME_UPPER"', (4, 3, 2, 2)),
                   ["CONV_2D", "DEPTH_TO_SPACE"]),
    "grouped": (layer("ConvTranspose", "strides = [2, 2], group = 2", (4, 3, 2, 2), 6, "N, 4, 5, 5", "N, C, H, W",
                      True),
                ["SPLIT_V", "CONV_2D", "DEPTH_TO_SPACE", "CONV_2D", "DEPTH_TO_SPACE", "CONCATENATION", "ADD"]),
}


@pytest.mark.parametrize("case", TRANSPOSED)
def test_conv_transpose(case, tmp_path):
    body, constants = TRANSPOSED[case]
    check_both_layouts(body, constants, tmp_path, atol=2e-5)


@pytest.mark.parametrize("case", UNFOLDED)
def test_upsamplers_unfold_into_conv_and_depth_to_space(case, tmp_path):
    (body, constants), wanted = UNFOLDED[case]
    nhwc = keras_style(model(body, constants))
    assert check(nhwc, tmp_path, atol=2e-5) == wanted
    assert check(model(body, constants), tmp_path, atol=2e-5).count("DEPTH_TO_SPACE") == wanted.count("DEPTH_TO_SPACE")


def pool(op: str, attributes: str, x_shape="N, 3, 9, 9"):
    return f"g (float[{x_shape}] x) => (float[N, C, H, W] y) {{ y = {op} <{attributes}> (x) }}"


POOLS = {
    "max 2x2": pool("MaxPool", "kernel_shape = [2, 2], strides = [2, 2]"),
    "max 3x3 stride 2 pad 1": pool("MaxPool", "kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]"),
    "max ceil_mode": pool("MaxPool", "kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1"),
    "max same_upper": pool("MaxPool", 'kernel_shape = [3, 3], strides = [2, 2], auto_pad = "SAME_UPPER"'),
    "avg 2x2": pool("AveragePool", "kernel_shape = [2, 2], strides = [2, 2]"),
    "avg pads excluded": pool("AveragePool", "kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]"),
    "avg pads counted": pool("AveragePool",
                             "kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1], count_include_pad = 1"),
    "avg asymmetric pads": pool("AveragePool", "kernel_shape = [3, 3], pads = [0, 1, 2, 0]"),
    "avg ceil_mode": pool("AveragePool", "kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1"),
    "global average": pool("GlobalAveragePool", ""),
    "global max": pool("GlobalMaxPool", ""),
}


@pytest.mark.parametrize("case", POOLS)
def test_pool(case, tmp_path):
    check_both_layouts(POOLS[case], None, tmp_path)


@pytest.mark.parametrize("op", ["MaxPool <kernel_shape = [3], strides = [2], pads = [1, 1]>",
                                "AveragePool <kernel_shape = [3], strides = [2], pads = [1, 1]>"])
def test_pool1d(op, tmp_path):
    check(model(f"g (float[N, 4, 11] x) => (float[N, C, L] y) {{ y = {op} (x) }}"), tmp_path)

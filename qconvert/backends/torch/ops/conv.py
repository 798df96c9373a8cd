"""Conv and ConvTranspose (1-D to 3-D) as torch.nn.functional calls."""

from __future__ import annotations

import torch.nn.functional as F

from qconvert.backends.torch.ops.common import spatial_padding
from qconvert.backends.torch.registry import emits

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv_geometry(b, node, weight_shape) -> dict:
    n = len(weight_shape) - 2
    kernel = list(b.attr(node, "kernel_shape", weight_shape[2:]))
    strides = list(b.attr(node, "strides", [1] * n))
    dilations = list(b.attr(node, "dilations", [1] * n))
    padding, explicit = spatial_padding(b, node, node.inputs[0], kernel, strides, dilations)
    return {"n": n, "stride": strides, "dilation": dilations, "padding": padding, "explicit": explicit,
            "groups": int(b.attr(node, "group", 1))}


@emits("Conv")
def conv(b, node):
    weight = b.const(node.inputs[1])
    shape = weight.shape if weight is not None else node.inputs[1].shape
    g = conv_geometry(b, node, list(shape))
    x = b.input(node, 0)
    if g["explicit"]:
        x = b.call(F.pad, x, g["explicit"])
    return b.call(CONV[g["n"]], x, b.input(node, 1), b.input(node, 2), stride=g["stride"],
                  padding=g["padding"], dilation=g["dilation"], groups=g["groups"])


def transpose_geometry(b, node, weight_shape) -> dict:
    n = len(weight_shape) - 2
    if b.attr(node, "output_shape") is not None:
        raise ValueError(f"ConvTranspose {node.name}: output_shape is not supported; give pads")
    auto_pad = b.attr(node, "auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", b"NOTSET", b"VALID"):
        raise ValueError(f"ConvTranspose {node.name}: auto_pad {auto_pad} is not supported")
    pads = list(b.attr(node, "pads", [0] * (2 * n)))
    if pads[:n] != pads[n:]:
        raise ValueError(f"ConvTranspose {node.name}: asymmetric pads are not supported")
    return {"n": n, "stride": list(b.attr(node, "strides", [1] * n)), "padding": pads[:n],
            "output_padding": list(b.attr(node, "output_padding", [0] * n)),
            "groups": int(b.attr(node, "group", 1)), "dilation": list(b.attr(node, "dilations", [1] * n))}


@emits("ConvTranspose")
def conv_transpose(b, node):
    weight = b.const(node.inputs[1])
    shape = weight.shape if weight is not None else node.inputs[1].shape
    g = transpose_geometry(b, node, list(shape))
    return b.call(CONV_TRANSPOSE[g["n"]], b.input(node, 0), b.input(node, 1), b.input(node, 2),
                  stride=g["stride"], padding=g["padding"], output_padding=g["output_padding"],
                  groups=g["groups"], dilation=g["dilation"])

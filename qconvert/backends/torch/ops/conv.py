"""Conv and ConvTranspose (1-D to 3-D) as torch.nn.functional calls."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qconvert.backends.torch.ops.common import spatial_padding, string, torch_pads
from qconvert.backends.torch.registry import emits

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _weight_shape(b, node) -> list[int]:
    weight = b.const(node.inputs[1])
    shape = list(weight.shape) if weight is not None else b.shape(node.inputs[1])
    if shape is None or any(not isinstance(d, int) for d in shape):
        raise b.unsupported(node, "the weight's shape is unknown")
    if len(shape) - 2 not in CONV:
        raise b.unsupported(node, f"{len(shape) - 2}-D convolution")
    return shape


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
    g = conv_geometry(b, node, _weight_shape(b, node))
    x = b.input(node, 0)
    if g["explicit"]:
        x = b.call(F.pad, x, g["explicit"])
    return b.call(CONV[g["n"]], x, b.input(node, 1), b.input(node, 2), stride=g["stride"],
                  padding=g["padding"], dilation=g["dilation"], groups=g["groups"])


def transpose_geometry(b, node, weight_shape) -> dict:
    """Strides, dilations, groups and the ONNX pads (begins, ends) after output_shape / auto_pad."""
    n = len(weight_shape) - 2
    kernel = list(b.attr(node, "kernel_shape", weight_shape[2:]))
    strides = list(b.attr(node, "strides", [1] * n))
    dilations = list(b.attr(node, "dilations", [1] * n))
    output_padding = list(b.attr(node, "output_padding", [0] * n))
    auto_pad = string(b.attr(node, "auto_pad", "NOTSET"))
    output_shape = b.attr(node, "output_shape")
    pads = list(b.attr(node, "pads", [0] * (2 * n)))
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        dims = b.shape(node.inputs[0])
        spatial = list(dims[2:]) if dims is not None else [None] * n
        if any(not isinstance(d, int) for d in spatial):
            raise b.unsupported(node, "output_shape / auto_pad SAME needs static spatial dims")
        wanted = list(output_shape)[-n:] if output_shape is not None else [d * s for d, s in zip(spatial, strides)]
        begins, ends = [], []
        for i in range(n):
            total = strides[i] * (spatial[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1 - wanted[i]
            small, large = total // 2, total - total // 2
            upper = auto_pad == "SAME_UPPER" if output_shape is None or auto_pad != "NOTSET" else False
            begins.append(small if upper else large)
            ends.append(large if upper else small)
        pads = begins + ends
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    return {"n": n, "stride": strides, "dilation": dilations, "groups": int(b.attr(node, "group", 1)),
            "begin": pads[:n], "end": pads[n:], "output_padding": output_padding,
            # torch's own padding: symmetric, non-negative, output_padding below stride or dilation
            "padding": pads[:n], "direct": pads[:n] == pads[n:] and min(pads) >= 0 and all(
                p < max(s, d) for p, s, d in zip(output_padding, strides, dilations))}


@emits("ConvTranspose")
def conv_transpose(b, node):
    g = transpose_geometry(b, node, _weight_shape(b, node))
    function = CONV_TRANSPOSE[g["n"]]
    if g["direct"]:
        return b.call(function, b.input(node, 0), b.input(node, 1), b.input(node, 2), stride=g["stride"],
                      padding=g["padding"], output_padding=g["output_padding"], groups=g["groups"],
                      dilation=g["dilation"])
    # The full transposed convolution, then the ONNX pads cut (negative: zeros added) and the bias
    y = b.call(function, b.input(node, 0), b.input(node, 1), None, stride=g["stride"], padding=0,
               groups=g["groups"], dilation=g["dilation"])
    y = b.call(F.pad, y, torch_pads([-p for p in g["begin"]],
                                    [o - p for o, p in zip(g["output_padding"], g["end"])]))
    if b.has(node, 2):
        bias = b.method("reshape", b.input(node, 2), [1, -1] + [1] * g["n"])
        y = b.call(torch.add, y, bias)
    return y

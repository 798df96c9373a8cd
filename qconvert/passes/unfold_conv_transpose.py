"""Rewrite a ConvTranspose whose windows do not overlap as a 1x1 Conv and a DepthToSpace.

The usual 2x2 / stride-2 upsampler of a UNet has no integer kernel in onnxruntime's CPU provider, and
PyTorch's int8 kernels have no per-channel transposed convolution: left as it is, it runs in float with a
dequantize/quantize on each side. When the kernel equals the stride and nothing is padded, every output
pixel comes from exactly one input pixel, so::

    y = ConvTranspose(x, W[C_in, C_out, k, k], B, strides=[k, k])

is the same function as::

    t = Conv(x, W'[k*k*C_out, C_in, 1, 1], tile(B, k*k))    # W'[(i*k + j)*C_out + c] = W[:, c, i, j]
    y = DepthToSpace(t, blocksize=k, mode="DCR")

and both run as int8 with the weight's per-output-channel scales repeated k*k times. DCR is also the
order of TFLite's DEPTH_TO_SPACE, so no backend needs a channel shuffle.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer, constant_array
from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)


class UnfoldConvTranspose(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return rewrite_matches(model, match, why_not, rewrite, logger, "kept")


def match(node: ir.Node) -> ir.Node | None:
    return node if node.op_type == "ConvTranspose" and node.domain in ("", "ai.onnx") else None


def why_not(node: ir.Node) -> str | None:
    """Why `node` cannot be unfolded, or None when it can."""
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    w = constant_array(weight)
    if w is None or w.ndim != 4:
        return "the weight is not a constant 4-D tensor"
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    b = constant_array(bias)
    if bias is not None and (b is None or b.shape != (w.shape[1],)):
        return "the bias is not a constant per output channel"
    attrs = node.attributes
    kernel = list(w.shape[2:])
    if kernel[0] != kernel[1] or kernel[0] < 2:
        return f"kernel {kernel} is not square and larger than 1"
    if attrs.get_int("group", 1) != 1:
        return "grouped"
    if list(attrs.get_ints("strides", [1, 1])) != kernel:
        return "the stride differs from the kernel (windows overlap or leave gaps)"
    if any(d != 1 for d in attrs.get_ints("dilations", [1, 1])):
        return "dilated"
    if any(p != 0 for p in attrs.get_ints("pads", [0] * 4)) or any(attrs.get_ints("output_padding", [0, 0])):
        return "padded"
    if "output_shape" in attrs or attrs.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "output_shape / auto_pad set"
    x = node.inputs[0]
    if x is None or x.shape is None or len(x.shape) != 4:
        return "the input is not known to be 4-D"
    return None


def rewrite(node: ir.Node) -> None:
    graph = node.graph
    weight = node.inputs[1]
    w = constant_array(weight)
    c_in, c_out, k, _ = w.shape
    unfolded = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k * k * c_out, c_in, 1, 1))
    inputs = [node.inputs[0], add_initializer(graph, f"{weight.name}_unfolded", unfolded)]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is not None:
        inputs.append(add_initializer(graph, f"{bias.name}_unfolded", np.tile(constant_array(bias), k * k)))
    conv = ir.Node("", "Conv", inputs, attributes=[ir.AttrInt64s("kernel_shape", [1, 1])], name=node.name)
    depth = ir.Node("", "DepthToSpace", conv.outputs,
                    attributes=[ir.AttrInt64("blocksize", k), ir.AttrString("mode", "DCR")],
                    name=f"{node.name}_depth_to_space")
    out = node.outputs[0]
    n, _, h, width = node.inputs[0].shape
    conv.outputs[0].name = f"{out.name}_unfolded"
    conv.outputs[0].type = out.type
    conv.outputs[0].shape = ir.Shape([n, k * k * c_out, h, width])
    graph.insert_after(node, [conv, depth])
    replace_value(out, depth.outputs[0])
    graph.remove(node, safe=True)

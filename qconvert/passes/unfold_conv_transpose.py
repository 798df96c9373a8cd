"""Rewrite a ConvTranspose whose windows do not overlap as a 1x1 Conv and a DepthToSpace.

The usual 2x2 / stride-2 upsampler of a UNet has no integer kernel in onnxruntime's CPU provider, and
PyTorch's int8 kernels have no per-channel transposed convolution: left as it is, it runs in float with a
dequantize/quantize on each side. TFLite's TRANSPOSE_CONV needs the output size computed at run time
(SHAPE, STRIDED_SLICE, PACK) where a 1x1 CONV_2D and DEPTH_TO_SPACE have static shapes whatever the batch.
When the (dilated) kernel equals the stride and nothing is padded, every output pixel comes from exactly
one input pixel, so::

    y = ConvTranspose(x, W[C_in, C_out, k, k], B, strides=[k, k])

is the same function as::

    t = Conv(x, W'[k*k*C_out, C_in, 1, 1], tile(B, k*k))    # W'[(i*k + j)*C_out + c] = W[:, c, i, j]
    y = DepthToSpace(t, blocksize=k, mode="DCR")

and both run as int8 with the weight's per-output-channel scales repeated k*k times. DCR is also the
order of TFLite's DEPTH_TO_SPACE, so no backend needs a channel shuffle. "Nothing is padded" is read after
auto_pad and output_shape are resolved (SAME with the kernel equal to the stride pads nothing), and a
dilated kernel is written out with zeros between its taps.

Options (keyword-only), both for the float TFLite emitter, which keeps the layers the IR has:

- ``split_groups``: a grouped one becomes Split -> one unfolded Conv and DepthToSpace per group ->
  Concat -> Add(B). The int8 preparation leaves it whole: the quantization plan keeps a grouped
  ConvTranspose float.
- ``runtime_bias``: a bias computed at run time is tiled by a Tile node.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import add_initializer, constant_array
from qconvert.passes.rewrite import replace_value, rewrite_matches

logger = logging.getLogger(__name__)


class UnfoldConvTranspose(ir.passes.InPlacePass):
    def __init__(self, *, split_groups: bool = False, runtime_bias: bool = False):
        super().__init__()
        self.split_groups, self.runtime_bias = split_groups, runtime_bias

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        check = partial(why_not, split_groups=self.split_groups, runtime_bias=self.runtime_bias)
        return rewrite_matches(model, match, check, partial(rewrite, opset=opset), logger, "kept")


def match(node: ir.Node) -> ir.Node | None:
    return node if node.op_type == "ConvTranspose" and node.domain in ("", "ai.onnx") else None


def dilate_kernel(weights: np.ndarray, dilations) -> np.ndarray:
    """A transposed conv's dilated kernel written out with zeros between the taps (exactly the same sums)."""
    for axis, d in enumerate(dilations):
        if d > 1:
            size = weights.shape[2 + axis]
            shape = list(weights.shape)
            shape[2 + axis] = (size - 1) * d + 1
            spread = np.zeros(shape, weights.dtype)
            index = [slice(None)] * weights.ndim
            index[2 + axis] = slice(None, None, d)
            spread[tuple(index)] = weights
            weights = spread
    return weights


def _kernel(node: ir.Node, w: np.ndarray) -> list[int]:
    """The spatial kernel size with the dilations written out."""
    dilations = list(node.attributes.get_ints("dilations", [1] * (w.ndim - 2)))
    return [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations)]


def _pads(node: ir.Node, kernel: list[int], strides: list[int]) -> list[int] | None:
    """The crops of the full output once auto_pad / output_shape are resolved as ONNX defines them (their
    sums per axis where ONNX splits them); None when that needs an input size the IR does not know."""
    attrs = node.attributes
    output_padding = list(attrs.get_ints("output_padding", [0, 0]))
    auto_pad = attrs.get_string("auto_pad", "NOTSET")
    if "output_shape" in attrs:
        shape, targets = node.inputs[0].shape, list(attrs.get_ints("output_shape"))[-2:]
        sizes = list(shape)[2:] if shape is not None else [None, None]
        if not all(isinstance(s, int) for s in sizes):
            return None
        return [st * (s - 1) + op + k - t for s, st, op, k, t in zip(sizes, strides, output_padding, kernel, targets)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # the output is input * stride: k - stride + output_padding
        return [k - st + op for k, st, op in zip(kernel, strides, output_padding)]
    if auto_pad == "VALID":
        return [0, 0]
    return list(attrs.get_ints("pads", [0] * 4))


def why_not(node: ir.Node, *, split_groups: bool = False, runtime_bias: bool = False) -> str | None:
    """Why `node` cannot be unfolded, or None when it can."""
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    w = constant_array(weight)
    if w is None or w.ndim != 4:
        return "the weight is not a constant 4-D tensor"
    x = node.inputs[0]
    if x is None or (x.shape is not None and len(x.shape) != 4):
        return "the input is not 4-D"  # ONNX: as the weight, whose rank is checked above
    attrs = node.attributes
    group = attrs.get_int("group", 1)
    if group != 1 and not split_groups:
        return "grouped"
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    b = constant_array(bias)
    if bias is not None and b is None and (not runtime_bias or group != 1):
        return "the bias is computed at run time"
    if b is not None and b.shape != (w.shape[1] * group,):
        return "the bias is not a constant per output channel"
    kernel = _kernel(node, w)
    if kernel[0] != kernel[1] or kernel[0] < 2:
        return f"kernel {kernel} (dilations written out) is not square and larger than 1"
    if list(attrs.get_ints("strides", [1, 1])) != kernel:
        return "the stride differs from the kernel (windows overlap or leave gaps)"
    if any(attrs.get_ints("output_padding", [0, 0])):
        return "output_padding"
    pads = _pads(node, kernel, kernel)
    if pads is None:
        return "output_shape with an input size the IR does not know"
    if any(p != 0 for p in pads):
        return "padded"
    return None


def _unfold(graph: ir.Graph, node: ir.Node, x: ir.Value, w: np.ndarray, bias: ir.Value | np.ndarray | None,
            name: str, weight_name: str) -> tuple[ir.Node, ...]:
    """Conv 1x1 -> DepthToSpace of one group's input `x` (weights C_in, C_out, k, k), not yet inserted."""
    c_in, c_out, k, _ = w.shape
    unfolded = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k * k * c_out, c_in, 1, 1))
    inputs, nodes = [x, add_initializer(graph, f"{weight_name}_unfolded", unfolded)], []
    if isinstance(bias, np.ndarray):
        inputs.append(add_initializer(graph, f"{node.inputs[2].name}_unfolded", np.tile(bias, k * k)))
    elif bias is not None:  # run-time bias: one Tile, as TFLite tiles it
        repeats = add_initializer(graph, f"{bias.name}_tiles", np.asarray([k * k], np.int64))
        nodes.append(ir.Node("", "Tile", [bias, repeats], name=f"{name}_bias_tile"))
        nodes[-1].outputs[0].name = f"{bias.name}_tiled"
        inputs.append(nodes[-1].outputs[0])
    conv = ir.Node("", "Conv", inputs, attributes=[ir.AttrInt64s("kernel_shape", [1, 1])], name=name)
    depth = ir.Node("", "DepthToSpace", conv.outputs,
                    attributes=[ir.AttrInt64("blocksize", k), ir.AttrString("mode", "DCR")],
                    name=f"{name}_depth_to_space")
    conv.outputs[0].type = node.outputs[0].type
    if x.shape is not None:
        n, _, h, width = x.shape
        conv.outputs[0].shape = ir.Shape([n, k * k * c_out, h, width])
    return (*nodes, conv, depth)


def rewrite(node: ir.Node, *, opset: int = 18) -> None:
    graph = node.graph
    weight, out = node.inputs[1], node.outputs[0]
    w = dilate_kernel(constant_array(weight), list(node.attributes.get_ints("dilations", [1, 1])))
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    b = constant_array(bias_value)
    group = node.attributes.get_int("group", 1)
    if group == 1:
        nodes = _unfold(graph, node, node.inputs[0], w, b if b is not None else bias_value, node.name, weight.name)
        nodes[-2].outputs[0].name = f"{out.name}_unfolded"
        graph.insert_after(node, nodes)
        replace_value(out, nodes[-1].outputs[0])
        graph.remove(node, safe=True)
        return
    # One unfolded Conv per group on its slice of the input channels, concatenated, then the bias (its
    # channels are split across the groups' DepthToSpace outputs, so it cannot go into the Convs).
    x = node.inputs[0]
    c_in = w.shape[0] // group
    split_attrs = [ir.AttrInt64("axis", 1)]
    split_inputs = [x]
    if opset >= 13:
        split_inputs.append(add_initializer(graph, f"{out.name}_group_sizes", np.full(group, c_in, np.int64)))
    else:
        split_attrs.append(ir.AttrInt64s("split", [c_in] * group))
    split = ir.Node("", "Split", split_inputs, attributes=split_attrs, num_outputs=group, name=f"{node.name}_groups")
    nodes = [split]
    parts = []
    for g, part in enumerate(split.outputs):
        part.name, part.type = f"{out.name}_group{g}_input", x.type
        if x.shape is not None:
            part.shape = ir.Shape([x.shape[0], c_in, *x.shape[2:]])
        unfolded = _unfold(graph, node, part, w[g * c_in:(g + 1) * c_in], None, f"{node.name}_group{g}",
                           f"{weight.name}_group{g}")
        unfolded[-2].outputs[0].name = f"{out.name}_group{g}_unfolded"
        unfolded[-1].outputs[0].name = f"{out.name}_group{g}"
        nodes.extend(unfolded)
        parts.append(unfolded[-1].outputs[0])
    concat = ir.Node("", "Concat", parts, attributes=[ir.AttrInt64("axis", 1)], name=f"{node.name}_concat")
    nodes.append(concat)
    result = concat.outputs[0]
    if b is not None:
        concat.outputs[0].name = f"{out.name}_unbiased"
        per_channel = add_initializer(graph, f"{bias_value.name}_per_channel", b.reshape(-1, 1, 1))
        nodes.append(ir.Node("", "Add", [result, per_channel], name=f"{node.name}_bias"))
        result = nodes[-1].outputs[0]
    graph.insert_after(node, nodes)
    replace_value(out, result)
    graph.remove(node, safe=True)

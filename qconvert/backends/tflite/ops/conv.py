"""Conv and ConvTranspose on channels-last tensors (1-D convolutions run as 2-D with height 1)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.ops.common import onnx_pads, pad_spatial, padding_mode
from qconvert.backends.tflite.registry import FLOAT, emits
from qconvert.passes.unfold_conv_transpose import dilate_kernel


def _as_2d(ctx: EmitContext, weights: np.ndarray) -> tuple[tf.Tensor, np.ndarray, bool]:
    """The input as N, H, W, C and the weights with two spatial dims; True when it was 1-D."""
    rank = ctx.rank(0)
    if rank not in (3, 4):
        raise ctx.unsupported(f"{rank - 2}-D convolution")
    x = ctx.channels_last(0)
    if rank == 3:
        return tf.expand_dims(x, 1), weights[:, :, None, :], True
    return x, weights, False


def _weights(ctx: EmitContext) -> np.ndarray:
    weights = ctx.static(1)
    if weights is None:
        raise ctx.unsupported("weights must be constants (TFLite's conv kernels take constant filters)")
    return weights


def _per_tensor_weight_scale(ctx: EmitContext) -> float | None:
    """The scale of an int8 weight the IR quantizes per tensor (a DequantizeLinear of an int8 constant with one
    scale), else None."""
    producer = ctx.node.inputs[1].producer() if len(ctx.node.inputs) > 1 and ctx.node.inputs[1] is not None else None
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    data, scale = producer.inputs[0].const_value, producer.inputs[1].const_value
    if data is None or scale is None or data.dtype != ir.DataType.INT8 or np.asarray(scale.numpy()).size != 1:
        return None
    return float(np.asarray(scale.numpy()).reshape(()))


def _filter(ctx: EmitContext, array: np.ndarray):
    """The filter as TensorFlow reads it: a per-tensor int8 weight through a fake-quant op on the IR's grid
    (narrow range, ±127·s), so the converter keeps its one scale instead of deriving one per channel from
    the values; else the constant."""
    scale = _per_tensor_weight_scale(ctx)
    if scale is None:
        return array
    return tf.quantization.fake_quant_with_min_max_vars(tf.constant(array), -127.0 * scale, 127.0 * scale,
                                                        num_bits=8, narrow_range=True)


def _bias(ctx: EmitContext):
    if not ctx.has_input(2):
        return None
    bias = ctx.static(2)
    return bias.astype(np.float32) if bias is not None else tf.cast(ctx.plain(2), tf.float32)


def _conv3d(ctx: EmitContext, weights: np.ndarray) -> None:
    """CONV_3D on N, D, H, W, C (TFLite's 3-D kernel takes no groups)."""
    if int(ctx.attr("group", 1)) != 1:
        raise ctx.unsupported("grouped 3-D convolution")
    x = ctx.channels_last(0)
    kernel = list(weights.shape[2:])
    strides = list(ctx.attr("strides", [1, 1, 1]))
    dilations = list(ctx.attr("dilations", [1, 1, 1]))
    sizes = x.shape.as_list()[1:4]
    pads = onnx_pads(ctx, sizes, kernel, strides, dilations)
    padding = padding_mode(pads, sizes, kernel, strides, dilations)
    if padding is None:
        x, padding = pad_spatial(x, pads), "VALID"
    y = tf.nn.conv3d(x, weights.transpose(2, 3, 4, 1, 0).astype(np.float32), [1, *strides, 1], padding,
                     dilations=[1, *dilations, 1])
    bias = _bias(ctx)
    if bias is not None:
        y = y + bias
    ctx.set(y, layout.channels_last(5))


def _spatial(ctx: EmitContext, name: str, default: int, one_d: bool) -> list[int]:
    values = list(ctx.attr(name, [default] * (1 if one_d else 2)))
    return [default] + values if one_d else values


def _pads(ctx: EmitContext, x: tf.Tensor, kernel, strides, dilations, one_d: bool):
    sizes = x.shape.as_list()[1:3]
    if one_d:
        pads = [(0, 0)] + onnx_pads(ctx, sizes[1:], kernel[1:], strides[1:], dilations[1:])
    else:
        pads = onnx_pads(ctx, sizes, kernel, strides, dilations)
    return pads, sizes


@emits("Conv", dtypes=FLOAT)
def conv(ctx: EmitContext) -> None:
    weights = _weights(ctx)
    if ctx.rank(0) == 5:
        _conv3d(ctx, weights)
        return
    x, weights, one_d = _as_2d(ctx, weights)
    bias = _bias(ctx)
    group = int(ctx.attr("group", 1))
    kernel = list(weights.shape[2:])
    strides = _spatial(ctx, "strides", 1, one_d)
    dilations = _spatial(ctx, "dilations", 1, one_d)
    pads, sizes = _pads(ctx, x, kernel, strides, dilations, one_d)
    padding = padding_mode(pads, sizes, kernel, strides, dilations)
    if padding is None:
        x, padding = pad_spatial(x, pads), "VALID"
    channels = weights.shape[1] * group
    out_channels = weights.shape[0]
    if group > 1 and group == channels and weights.shape[1] == 1 and strides[0] == strides[1]:
        # Depthwise: ONNX output channel g*m + k is TF's input channel g, multiplier k.
        multiplier = out_channels // group
        kernel_hwcm = weights.reshape(group, multiplier, *kernel).transpose(2, 3, 0, 1)
        if dilations == [1, 1]:
            y = tf.nn.depthwise_conv2d(x, _filter(ctx, kernel_hwcm), [1, *strides, 1], padding)
        else:
            # The raw op carries the dilation into DEPTHWISE_CONV_2D. tf.nn's wrapper spreads it over
            # SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND, which the converter folds back only at a static batch
            # (int8 then left them in float). The raw op has no CPU kernel for it: traced, never run here.
            y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=_filter(ctx, kernel_hwcm),
                                                 strides=[1, *strides, 1], padding=padding,
                                                 dilations=[1, *dilations, 1])
    elif group == 1 or _quantized_input(ctx):
        # Grouped and int8: one grouped CONV_2D (the converter quantizes it from the fake-quant ops
        # around it; split per-group convs would leave their outputs without ranges, in float).
        y = tf.nn.conv2d(x, _filter(ctx, weights.transpose(2, 3, 1, 0)), strides, padding, dilations=dilations)
    else:
        # Grouped: one convolution per group, concatenated (TFLite's grouped CONV_2D is not
        # supported by every delegate).
        parts = tf.split(x, group, axis=3)
        filters = np.split(weights.transpose(2, 3, 1, 0), group, axis=3)
        y = tf.concat([tf.nn.conv2d(p, f, strides, padding, dilations=dilations)
                       for p, f in zip(parts, filters)], axis=3)
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    if one_d:
        y = tf.squeeze(y, [1])
    ctx.set(y, layout.channels_last(ctx.rank(0)))


def _quantized_input(ctx: EmitContext) -> bool:
    """Whether the IR computes this node in int8 (its input is a DequantizeLinear's)."""
    producer = ctx.node.inputs[0].producer()
    return producer is not None and producer.op_type == "DequantizeLinear"


def _transpose_pads(ctx: EmitContext, sizes, kernel, strides, one_d: bool) -> tuple[list, list]:
    """(begin, end) crops of the full transposed-conv output, and output_padding, per spatial dim."""
    spatial = 1 if one_d else 2
    output_padding = list(ctx.attr("output_padding", [0] * spatial))
    output_shape = ctx.attr("output_shape")
    auto_pad = ctx.text("auto_pad", "NOTSET")
    in_sizes, kernel, strides = sizes[-spatial:], kernel[-spatial:], strides[-spatial:]
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if output_shape is not None:
            targets = list(output_shape)[-spatial:]
        else:
            targets = [s * st for s, st in zip(in_sizes, strides)]
        pads = []
        for size, k, st, op, target in zip(in_sizes, kernel, strides, output_padding, targets):
            total = st * (size - 1) + op + k - target
            half = total // 2
            pads.append((half, total - half) if auto_pad == "SAME_UPPER" else (total - half, half))
    elif auto_pad == "VALID":
        pads = [(0, 0)] * spatial
    else:
        flat = list(ctx.attr("pads", [0] * (2 * spatial)))
        pads = list(zip(flat[:spatial], flat[spatial:]))
    if one_d:
        pads, output_padding = [(0, 0)] + pads, [0] + output_padding
    return pads, output_padding


@emits("ConvTranspose", dtypes=FLOAT)
def conv_transpose(ctx: EmitContext) -> None:
    weights = _weights(ctx)  # C_in, C_out / group, kH, kW
    if ctx.rank(0) not in (3, 4):
        raise ctx.unsupported(f"{ctx.rank(0) - 2}-D transposed convolution")
    weights = dilate_kernel(weights, list(ctx.attr("dilations", [1] * (ctx.rank(0) - 2))))
    group = int(ctx.attr("group", 1))
    if group > 1:
        # One transposed convolution per group, concatenated on channels.
        c_in = weights.shape[0] // group
        x = ctx.channels_last(0)
        parts = tf.split(x, group, axis=-1)
        outputs = [_conv_transpose(ctx, part, weights[g * c_in:(g + 1) * c_in], None) for g, part in enumerate(parts)]
        y = tf.concat(outputs, axis=-1)
        bias = _bias(ctx)
        ctx.set(y + bias if bias is not None else y, layout.channels_last(ctx.rank(0)))
        return
    ctx.set(_conv_transpose(ctx, ctx.channels_last(0), weights, _bias(ctx)), layout.channels_last(ctx.rank(0)))


def _conv_transpose(ctx: EmitContext, x: tf.Tensor, weights: np.ndarray, bias) -> tf.Tensor:
    """One group's transposed convolution of channels-last ``x`` (weights C_in, C_out, k...)."""
    one_d = ctx.rank(0) == 3
    if one_d:
        x, weights = tf.expand_dims(x, 1), weights[:, :, None, :]
    kernel = list(weights.shape[2:])
    strides = _spatial(ctx, "strides", 1, one_d)
    sizes = x.shape.as_list()[1:3]
    if any(s is None for s in sizes):
        raise ctx.unsupported("unknown spatial size")
    pads, output_padding = _transpose_pads(ctx, sizes, kernel, strides, one_d)
    if any(b < 0 or e < 0 for b, e in pads):
        raise ctx.unsupported("negative pads")
    out_channels = weights.shape[1]
    full = [(s - 1) * st + k + op for s, st, k, op in zip(sizes, strides, kernel, output_padding)]
    wanted = [f - b - e for f, (b, e) in zip(full, pads)]
    # Non-overlapping windows (the usual 2x2/stride-2 upsampler) arrive as a 1x1 Conv and a DepthToSpace
    # (qconvert.passes.unfold_conv_transpose, in the TFLite preparation).
    batch = tf.shape(x)[0]
    same = wanted == [s * st for s, st in zip(sizes, strides)] and not any(output_padding)
    padding = "SAME" if same and _tf_same_transpose_pads(kernel, strides) == pads else "VALID"
    size = wanted if padding == "SAME" else full
    y = tf.nn.conv2d_transpose(x, _filter(ctx, weights.transpose(2, 3, 1, 0)),
                               tf.stack([batch, *size, out_channels]), strides, padding)
    if padding == "VALID" and wanted != full:
        y = y[:, pads[0][0]:pads[0][0] + wanted[0], pads[1][0]:pads[1][0] + wanted[1], :]
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    if one_d:
        y = tf.squeeze(y, [1])
    return y


def _tf_same_transpose_pads(kernel, strides) -> list[tuple[int, int]]:
    pads = []
    for k, st in zip(kernel, strides):
        total = max(k - st, 0)
        pads.append((total // 2, total - total // 2))
    return pads

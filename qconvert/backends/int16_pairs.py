"""x86's int16 pair sums, and the interleaving both x86 int8 backends (onnx-qdq, torch-int8) use against them.

On x86 CPUs without VNNI, onnxruntime's (MLAS) and torch's (fbgemm, oneDNN) fast u8×s8 kernels add each
pair of adjacent input channels' products in int16 (vpmaddubsw), which saturates when
255·(|w_i| + |w_j|) > 32767. An input that takes negative values sits near code 128 on every element and
an image spreads its codes over the whole range: most outputs of a layer reading one came out wrong.
Such an input is read with a zero-point channel after every channel (channel c moves to 2c) and the
layer's weights get a zero column after every column, so each pair holds one product: exact on every
x86 CPU. The interleaving is an integer layer of its own whose weight is 1 from channel c to 2c,
requantized by exactly 1.0 (it returns each code).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

# Ops between a graph input and a layer that keep its values (a Keras model's NHWC → NCHW Transpose).
READS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                 "Identity")


def signed_or_input(x: ir.Value, unsigned_zero_point: int) -> bool:
    """Whether a u8×s8 layer reading x needs its input interleaved: x takes negative values (its uint8
    zero point above 0), or x is a quantized graph input or is moved from one (pixels in [0, 1] spread
    their codes over the whole range). A hidden tensor without negative values (post-ReLU) has mostly
    small codes; it can still saturate a rare pair, with two channels near the top against two large
    weights of one sign."""
    if unsigned_zero_point > 0:
        return True
    node = x.producer()
    while node is not None and node.op_type in READS_THROUGH:
        if node.inputs[0].is_graph_input():
            return True
        node = node.inputs[0].producer()
    return False


def interleaved_width(channels: int, alignment: int = 1) -> int:
    """The interleaved channel count: twice `channels`, rounded up to `alignment` with more zero-point
    channels (a kernel's channel multiple)."""
    return 2 * channels + (-2 * channels % alignment)


def interleave_weight(channels: int, wide: int) -> np.ndarray:
    """[wide, channels] int8: 1 from input channel c to output channel 2c, 0 elsewhere."""
    weight = np.zeros((wide, channels), np.int8)
    weight[np.arange(0, 2 * channels, 2), np.arange(channels)] = 1
    return weight


def spread(weights: np.ndarray, axis: int, wide: int) -> np.ndarray:
    """A layer's int8 weights with a zero slice after each slice along its input-channel `axis`, then
    zeros up to `wide`: the weights that read the interleaved input."""
    result = np.zeros([wide if i == axis else d for i, d in enumerate(weights.shape)], np.int8)
    index = [slice(None)] * weights.ndim
    index[axis] = slice(0, 2 * weights.shape[axis], 2)
    result[tuple(index)] = weights
    return result

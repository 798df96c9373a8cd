"""Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", section 4.2, in its empirical form):
quantizing a layer's weights shifts the mean of its outputs; the shift, measured per output channel on the
calibration samples, is taken off the float bias, and the int32 bias requantized at its scale s_x·s_w.

Per layer (qconvert/train/layerwise.py), in graph order, on its pre-activation output:

    shift_c = mean over samples and positions of  layer(x~, W_q)_c - layer(x_ref, W)_c
    b'_c = b_c - shift_c,   int32 codes = round(b' / (s_x·s_w))

x~ is the layer's input in the QDQ IR as corrected so far (the layers before are corrected first, so
their corrections show in it). `target_inputs` "quantized" (the default) takes x_ref = x~: the shift is the
weights' rounding error alone, E[(W_q - W)·x~]. "float" takes x_ref from the float IR, so the correction also
absorbs the mean error that reaches the layer from the quantized layers before it.

Only int32 bias initializers change (or a float bias, where the layer's input is not int8); the scales stay
bit for bit, so every backend lowers the result as any other QDQ IR. A layer without a bias is left as it is
(adding one would change the graph), and says so in the facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
import torch

from qconvert.errors import UsageError
from qconvert.quant.calibrate import batch_size_of
from qconvert.train.layerwise import (Feeds, LayerFunction, QuantizedLayer, batched, bias_dequantized,
                                      channel_means, dequantize_of, device_of, limit_samples, optimise_layers,
                                      streamed)
from qconvert.train.writeback import quantize_array

BATCH = 256  # samples per run of the program and of a layer


@dataclass(frozen=True)
class BiasCorrectionOptions:
    samples: int = 1024  # calibration samples used at most (fewer where one pass cannot hold them: stream_samples)
    target_inputs: str = "quantized"  # quantized | float (see the module docstring)
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self):
        if self.samples < 1:
            raise UsageError(f"bias correction samples {self.samples} must be positive")
        if self.target_inputs not in ("float", "quantized"):
            raise UsageError(f"bias correction target_inputs must be float or quantized, got {self.target_inputs!r}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"bias correction threads {self.threads} must be positive")


def correct_biases(qdq: ir.Model, float_model: ir.Model, calib: Feeds,
                   options: BiasCorrectionOptions = BiasCorrectionOptions()) -> tuple[ir.Model, dict]:
    """A copy of the QDQ IR with corrected biases, and facts for the report: per layer the mean and largest
    shift taken off the bias, the mean |per-channel mean error| of its output before and after, seconds."""
    device = device_of(options.device)
    calib = limit_samples(calib, options.samples)
    batch = batch_size_of(qdq, BATCH)

    return optimise_layers(qdq, float_model, "bias-correction", options, 0,
                           streamed(float_model, calib, batch, device, options.target_inputs == "float",
                                    _correct_layer),
                           lambda layer: "no bias" if layer.bias is None else None)


def output_shift(layer: QuantizedLayer, x_q: torch.Tensor, x_ref: torch.Tensor | None, bias: np.ndarray,
                 opset: int) -> np.ndarray:
    """The per-channel mean of layer(x~, W_q, b) - layer(x_ref, W, b) over the samples (x_ref None: x~),
    a batch at a time. The float bias b is on both sides: it cancels."""
    device = x_q.device
    function = LayerFunction(layer, tuple(x_q[:1].shape), opset).to(device)
    w_q = torch.from_numpy(layer.dequantize(layer.codes.const_value.numpy())).to(device)
    w = torch.from_numpy(layer.weight).to(device)
    b = torch.from_numpy(bias.astype(np.float32)).to(device)
    x_ref = x_q if x_ref is None else x_ref
    total, count = None, 0
    with torch.no_grad():
        for part in batched(len(x_q), BATCH):
            y_q, y = function(x_q[part], w_q, b)[0], function(x_ref[part], w, b)[0]
            n = y.numel() // y.shape[layer.output_axis]
            sums = channel_means((y_q - y).double(), layer.output_axis) * n
            total, count = (sums if total is None else total + sums), count + n
    return (total / count).cpu().numpy()


def _correct_layer(layer: QuantizedLayer, x_q: torch.Tensor, x_ref: torch.Tensor | None, opset: int) -> dict:
    quantized = bias_dequantized(layer)
    bias = layer.bias_float if layer.bias_float is not None else quantized
    shift = output_shift(layer, x_q, x_ref, bias, opset)
    # the error as it stands: the shift, and the int32 bias's own rounding (b_q - b)
    before = shift + quantized.astype(np.float64) - bias.astype(np.float64)
    corrected = (bias.astype(np.float64) - shift).astype(np.float32)
    value = layer.bias
    old = value.const_value.numpy()
    if old.dtype.kind == "f":
        codes = corrected
    else:
        dequantize = dequantize_of(value)
        axis = dequantize.attributes["axis"].value if "axis" in dequantize.attributes else 1
        info = np.iinfo(old.dtype)
        scale = dequantize.inputs[1].const_value.numpy()  # s_x·s_w as the IR holds it: the grid kernels add on
        codes = quantize_array(corrected, scale, np.zeros((), np.int64), axis, info.min, info.max, wide=True)
    value.const_value = ir.tensor(codes.astype(old.dtype), name=value.name)
    after = shift + bias_dequantized(layer).astype(np.float64) - bias.astype(np.float64)
    return {"layer": layer.name, "op": layer.node.op_type, "channels": int(shift.size),
            "samples": len(x_q), "target": "quantized" if x_ref is None else "float",
            "mean_shift": float(np.mean(np.abs(shift))), "max_shift": float(np.max(np.abs(shift))),
            "mean_error_before": float(np.mean(np.abs(before))), "mean_error_after": float(np.mean(np.abs(after)))}

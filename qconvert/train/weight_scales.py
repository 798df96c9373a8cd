"""Weight scales chosen by the layer's output error on the calibration samples: where QAT's weight scales
start (qconvert.pipeline.train.quantization_aware).

Calibration gives each weight the scale max|W| / q_max. One scale per tensor then covers channels of very
different ranges: a depthwise channel whose input is always zero (its ReLU died in training) has a running
variance of ~0, so folding its BatchNorm scales its weights by 1 / sqrt(eps), hundreds of times the other
channels', and the max-scale leaves the live channels a step or two, or none. No weight-only criterion sees
that those large weights multiply zeros. The layer's output does: per layer (qconvert/train/layerwise.py), in
graph order,

    s' = α·s,  α = argmin over the grid GRID of  Σ_c mean (f(x~, Q_{α·s}(W)) - f(x~, W))²

f the layer with its fused Relu/Clip (what the int8 unit outputs), x~ its input in the QDQ IR as searched so
far, the error summed over output channels. A per-channel scale takes each channel's own best α (the
output channels' errors are independent); a per-tensor one the α of the least total. α = 1 is the grid's
first point and wins ties, so a layer whose max-scale is best keeps it bit for bit; α is never above 1
(calibration's scale already spans the largest weight). The clipped weights sit at ±q_max, so the scale
any converter re-derives from the largest integer weight is s'.

QAT's LSQ then learns the scales from there: under Adam a scale moves by about the learning rate per step,
so a scale tens of times too large is not learned away in a few epochs (Esser et al. initialise from the
weights alone, for 2-4 bits where no channel is dead). Each changed layer's scale, integer weights and
int32 bias (at s_x·s') are rewritten together, so the result is an ordinary QDQ IR that every backend
lowers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import onnx_ir as ir
import torch

from qconvert.errors import UsageError
from qconvert.ir.values import copy_model
from qconvert.quant.calibrate import batch_size_of
from qconvert.train.layerwise import (Capture, Feeds, LayerFunction, QuantizedLayer, Skipped, batched,
                                      bias_dequantized, device_of, limit_samples, quantized_layers, seeded)
from qconvert.train.writeback import bias_scale, quantize_array

BATCH = 256  # samples per run of the program and of a layer
# α from 1 down to 2^-10 in steps of 2^(1/8) (9 % apart): the dead-channel case needs factors of hundreds
GRID = tuple(float(2.0 ** (-k / 8)) for k in range(81))


@dataclass(frozen=True)
class WeightScaleOptions:
    samples: int = 256  # calibration samples used at most
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self):
        if self.samples < 1:
            raise UsageError(f"weight scale search samples {self.samples} must be positive")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"weight scale search threads {self.threads} must be positive")


def search_weight_scales(qdq: ir.Model, float_model: ir.Model, calib: Feeds,
                         options: WeightScaleOptions = WeightScaleOptions()) -> tuple[ir.Model, dict]:
    """A copy of the QDQ IR whose weight scales minimise each layer's output error (see the module
    docstring), and facts: per layer the output MSE at calibration's scales and at the chosen ones, the
    smallest α taken, and how many scales changed."""
    device = device_of(options.device)
    calib = limit_samples(calib, options.samples)
    batch = batch_size_of(qdq, BATCH)
    result = copy_model(qdq)
    facts = {"method": "weight-scales", "options": asdict(options), "layers": []}
    began = time.perf_counter()
    with seeded(0, options.threads):
        for layer in quantized_layers(result, float_model):
            if isinstance(layer, Skipped):
                facts["layers"].append({"layer": layer.name, "op": layer.op, "skipped": layer.reason})
                continue
            reason = _unsearchable(layer)
            if reason:
                facts["layers"].append({"layer": layer.name, "op": layer.node.op_type, "skipped": reason})
                continue
            start = time.perf_counter()
            record = _search_layer(result, layer, calib, batch, device)
            record["seconds"] = round(time.perf_counter() - start, 3)
            facts["layers"].append(record)
    facts["seconds"] = round(time.perf_counter() - began, 3)
    return result, facts


def _weight_dequantize(layer: QuantizedLayer) -> ir.Node:
    return next(node for node, index in layer.codes.uses() if node.op_type == "DequantizeLinear" and index == 0)


def _unsearchable(layer: QuantizedLayer) -> str | None:
    """Why this layer's weight scale cannot change alone, or None."""
    scale = _weight_dequantize(layer).inputs[1]
    if len(list(scale.uses())) != 1:
        return "weight scale shared with another tensor"
    if layer.low != -layer.high or np.any(layer.zero != 0):
        return "asymmetric weights"
    if layer.bias is not None and layer.bias.const_value.dtype == ir.DataType.INT32:
        bias_scale_value = next(n for n, i in layer.bias.uses() if n.op_type == "DequantizeLinear").inputs[1]
        if len(list(bias_scale_value.uses())) != 1:
            return "bias scale shared with another tensor"
    return None


def _search_layer(model: ir.Model, layer: QuantizedLayer, calib: Feeds, batch: int, device: torch.device) -> dict:
    """Choose one layer's α in place in `model` (the QDQ IR as searched so far)."""
    x_q = Capture(model, device).tensor(layer.node.inputs[0].name, calib, batch)
    function = LayerFunction(layer, tuple(x_q.shape), model.opset_imports.get("", 13)).to(device)
    bias = _float_bias(layer)
    b = torch.from_numpy(bias).to(device) if bias is not None else None
    weight = torch.from_numpy(layer.weight).to(device)
    scale = torch.from_numpy(layer.shaped(layer.scale).astype(np.float32)).to(device)
    with torch.no_grad():
        targets = [function(x_q[part], weight, b)[1] for part in batched(len(x_q), BATCH)]
        errors = torch.stack([_channel_errors(function, layer, x_q, targets, weight, scale * alpha, b)
                              for alpha in GRID])  # (grid, channels)
    grid = np.asarray(GRID, np.float32)
    if layer.scale.ndim == 0:
        totals = errors.sum(dim=1)
        best = int(torch.argmin(totals))  # the first minimum: α = 1 wins ties
        alphas = np.float32(grid[best])
        before, after = float(totals[0]), float(totals[best])
    else:
        best = torch.argmin(errors, dim=0).cpu().numpy()
        alphas = grid[best].reshape(layer.scale.shape)
        before, after = float(errors[0].sum()), float(errors.min(dim=0).values.sum())
    count = sum(t.numel() for t in targets) / errors.shape[1]
    new_scale = (layer.scale * alphas).astype(np.float32)
    changed = int(np.count_nonzero(new_scale != layer.scale))
    if changed:
        _rewrite(layer, new_scale, bias)
    return {"layer": layer.name, "op": layer.node.op_type, "scales": int(layer.scale.size), "changed": changed,
            "smallest_alpha": float(np.min(alphas)), "samples": int(len(x_q)),
            "mse_calibration": before / count, "mse": after / count}


def _channel_errors(function: LayerFunction, layer: QuantizedLayer, x_q: torch.Tensor, targets: list[torch.Tensor],
                    weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Σ over samples and positions of the squared output error per output channel, at `scale`."""
    w_q = torch.clamp(torch.round(weight / scale), layer.low, layer.high) * scale
    total = None
    for part, target in zip(batched(len(x_q), BATCH), targets):
        error = (function(x_q[part], w_q, bias)[1] - target).double().square()
        axis = layer.output_axis % error.dim()
        sums = error.transpose(0, axis).reshape(error.shape[axis], -1).sum(dim=1)
        total = sums if total is None else total + sums
    return total


def _float_bias(layer: QuantizedLayer) -> np.ndarray | None:
    """The float IR's bias, or where it has none of that name, the bias the QDQ IR adds."""
    return layer.bias_float if layer.bias_float is not None else bias_dequantized(layer)


def _rewrite(layer: QuantizedLayer, scale: np.ndarray, bias: np.ndarray | None) -> None:
    """The layer's weight scale, its integer weights requantized from the float weight, and its int32 bias
    at s_x·s_w: one consistent QDQ layer."""
    dequantize = _weight_dequantize(layer)
    scale_value = dequantize.inputs[1]
    scale_value.const_value = ir.tensor(scale.reshape(scale_value.const_value.shape.dims), name=scale_value.name)
    codes = quantize_array(layer.weight, scale, layer.zero, layer.axis, layer.low, layer.high)
    layer.codes.const_value = ir.tensor(codes.astype(layer.codes.const_value.dtype.numpy()), name=layer.codes.name)
    layer.scale = scale
    if layer.bias is None or layer.bias.const_value.dtype != ir.DataType.INT32:
        return
    bias_dequantize = next(n for n, i in layer.bias.uses() if n.op_type == "DequantizeLinear" and i == 0)
    grid = bias_scale(bias_dequantize)
    bias_scale_value = bias_dequantize.inputs[1]
    bias_scale_value.const_value = ir.tensor(grid.reshape(bias_scale_value.const_value.shape.dims),
                                             name=bias_scale_value.name)
    info = np.iinfo(np.int32)
    axis = bias_dequantize.attributes["axis"].value if "axis" in bias_dequantize.attributes else 0
    bias_codes = quantize_array(bias, grid, np.zeros((), np.int64), axis, info.min, info.max, wide=True)
    layer.bias.const_value = ir.tensor(bias_codes.astype(np.int32), name=layer.bias.name)

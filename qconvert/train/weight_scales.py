"""Weight scales chosen by the layer's output error on the calibration samples: where QAT's weight scales
start (qconvert.pipeline.train.quantization_aware).

Calibration gives each weight the scale max|W| / q_max. One scale per tensor then covers channels of very
different ranges: a depthwise channel whose input is always zero (its ReLU died in training) has a running
variance of ~0, so folding its BatchNorm scales its weights by 1 / sqrt(eps), hundreds of times the other
channels', and the max-scale leaves the live channels a step or two, or none. No weight-only criterion sees
that those large weights multiply zeros. The layer's output does: per layer (qconvert/train/layerwise.py), in
graph order,

    s' = α·s,  α = argmin over α = 2^(-e/8) ≤ 1 of  Σ_c mean (f(x~, Q_{α·s}(W)) - f(x~, W))²

f the layer with its fused Relu/Clip (what the int8 unit outputs), x~ its input in the QDQ IR as searched so
far, the error summed over output channels; e is searched coarse to fine (COARSE, FINE), on the
calibration samples that fit POSITIONS and MACS. A per-channel scale takes each channel's own best α (the output
channels' errors are independent); a per-tensor one the α of the least total. α = 1 is always tried first
and wins ties, so a layer whose max-scale is best keeps it bit for bit; α is never above 1
(calibration's scale already spans the largest weight). The clipped weights sit at ±q_max, so the scale
any converter re-derives from the largest integer weight is s'.

QAT's LSQ then learns the scales from there: under Adam a scale moves by about the learning rate per step,
so a scale tens of times too large is not learned away in a few epochs (Esser et al. initialise from the
weights alone, for 2-4 bits where no channel is dead). Each changed layer's scale, integer weights and
int32 bias (at s_x·s') are rewritten together, so the result is an ordinary QDQ IR that every backend
lowers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
import torch

from qconvert.errors import UsageError
from qconvert.quant.calibrate import batch_size_of
from qconvert.train.layerwise import (LIVE_TENSORS, STREAM_BYTES, Capture, Feeds, LayerFunction, LayerInputs,
                                      QuantizedLayer, batched, bias_dequantized, dequantize_of, device_of,
                                      limit_samples, optimise_layers)
from qconvert.train.writeback import bias_scale, quantize_array

BATCH = 256  # samples per run of the program and of a layer
# α = 2^(-e/8): coarse e = 0, 8, ..., 80 (α 1 down to 2^-10: the dead-channel case needs factors of
# hundreds), then fine e = best coarse -7..+7 (9 % apart), never above α = 1: 26 layer runs, not 81
STEPS_PER_OCTAVE = 8
COARSE = np.arange(0, 81, 8, dtype=np.float64)
FINE = np.arange(-7, 8, dtype=np.float64)
# Per layer, the samples its error is measured on are cut to these: output positions per channel (a
# full-resolution conv needs few images) and multiply-accumulates per run of the layer (26 runs per layer)
POSITIONS = 1 << 16
MACS = 1 << 30


@dataclass(frozen=True)
class WeightScaleOptions:
    samples: int = 64  # calibration samples used at most (one pass of the program runs on them)
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

    def searcher(model: ir.Model, layers: list[QuantizedLayer]):
        capture, opset = Capture(model, device), model.opset_imports.get("", 13)
        counts = _sample_counts(capture, layers, calib, opset)
        inputs = LayerInputs(capture, [layer.input for layer in layers],
                             limit_samples(calib, max(counts.values(), default=1)), batch)

        def search(layer: QuantizedLayer) -> dict:
            record = _search_layer(layer, inputs.of(layer.input)[:counts[id(layer)]], opset, device)
            inputs.update(layer)
            return record
        return search

    return optimise_layers(qdq, float_model, "weight-scales", options, 0, searcher, _unsearchable)


def _weight_dequantize(layer: QuantizedLayer) -> ir.Node:
    return dequantize_of(layer.codes)


def _unsearchable(layer: QuantizedLayer) -> str | None:
    """Why this layer's weight scale cannot change alone, or None."""
    scale = _weight_dequantize(layer).inputs[1]
    if len(list(scale.uses())) != 1:
        return "weight scale shared with another tensor"
    if layer.low != -layer.high or np.any(layer.zero != 0):
        return "asymmetric weights"
    if layer.bias is not None and layer.bias.const_value.dtype == ir.DataType.INT32:
        bias_scale_value = dequantize_of(layer.bias).inputs[1]
        if len(list(bias_scale_value.uses())) != 1:
            return "bias scale shared with another tensor"
    return None


def _search_layer(layer: QuantizedLayer, x_q: torch.Tensor, opset: int, device: torch.device) -> dict:
    """Choose one layer's α in place in the QDQ IR (as searched so far), on its input there: the coarse
    grid, then the fine one around each scale's best coarse α."""
    function = LayerFunction(layer, tuple(x_q.shape), opset).to(device)
    bias = _float_bias(layer)
    b = torch.from_numpy(bias).to(device) if bias is not None else None
    weight = torch.from_numpy(layer.weight).to(device)
    scale = torch.from_numpy(layer.shaped(layer.scale).astype(np.float32)).to(device)
    per_tensor = layer.scale.ndim == 0
    channels = layer.scale.size

    def errors_at(exponents: np.ndarray) -> torch.Tensor:
        """Per output channel, the summed squared error at α = 2^(-e/8) for each row of `exponents`
        (one exponent per scale): (rows, channels)."""
        rows = []
        for row in exponents:
            alpha = layer.shaped((2.0 ** (-row / STEPS_PER_OCTAVE)).astype(np.float32))
            rows.append(_channel_errors(function, layer, x_q, targets, weight,
                                        scale * torch.from_numpy(alpha).to(device), b))
        return torch.stack(rows)

    def best(exponents: np.ndarray, errors: torch.Tensor) -> np.ndarray:
        """Each scale's exponent of least error; the first row wins ties."""
        if per_tensor:
            return exponents[int(torch.argmin(errors.sum(dim=1)))]
        index = torch.argmin(errors, dim=0).cpu().numpy()
        return exponents[index, np.arange(channels)]

    with torch.no_grad():
        targets = [function(x_q[part], weight, b)[1] for part in batched(len(x_q), BATCH)]
        coarse = np.repeat(COARSE[:, None], 1 if per_tensor else channels, axis=1)
        coarse_errors = errors_at(coarse)
        if not per_tensor and coarse_errors.shape[1] != channels:
            return {"layer": layer.name, "op": layer.node.op_type,
                    "skipped": "per-channel weight scales not along the output channels"}
        around = best(coarse, coarse_errors)
        fine = np.clip(around[None, :] + FINE[:, None], 0, None)
        # α = 1 first, so that calibration's scale wins every tie
        fine = np.concatenate([np.zeros_like(fine[:1]), fine])
        fine_errors = errors_at(fine)
        chosen = best(fine, fine_errors)
    before = float(coarse_errors[0].sum())
    after = float(fine_errors.sum(dim=1).min()) if per_tensor else float(fine_errors.min(dim=0).values.sum())
    alphas = (2.0 ** (-chosen / STEPS_PER_OCTAVE)).astype(np.float32).reshape(layer.scale.shape)
    count = sum(t.numel() for t in targets) / coarse_errors.shape[1]  # positions per output channel
    new_scale = (layer.scale * alphas).astype(np.float32)
    changed = int(np.count_nonzero(new_scale != layer.scale))
    if changed:
        _rewrite(layer, new_scale, bias)
    return {"layer": layer.name, "op": layer.node.op_type, "scales": int(layer.scale.size), "changed": changed,
            "smallest_alpha": float(np.min(alphas)), "samples": int(len(x_q)),
            "mse_calibration": before / count, "mse": after / count}


def _sample_counts(capture: Capture, layers: list[QuantizedLayer], calib: Feeds, opset: int) -> dict[int, int]:
    """Per layer (by id), the calibration samples that keep its output to about POSITIONS positions per
    channel and one run of it to about MACS multiply-accumulates (every sample for a small layer; a few
    images for a full-resolution conv or a wide one), and that keep the one pass of LayerInputs, which holds
    a few layers' inputs and outputs on every sample at once, within STREAM_BYTES. Shapes from one sample."""
    probe = LayerInputs(capture, [layer.input for layer in layers], limit_samples(calib, 1), 1)
    available = len(next(iter(calib.values())))
    counts, widest = {}, 1
    with torch.no_grad():
        for layer in layers:
            x = probe.of(layer.input)
            output = LayerFunction(layer, tuple(x.shape), opset).to(capture.device)(
                x, torch.from_numpy(layer.weight).to(capture.device), None)[0]
            channels = output.shape[layer.output_axis]
            positions = max(output.numel() // channels, 1)
            macs = output.numel() * layer.weight.size // max(channels, 1)
            counts[id(layer)] = max(1, min(available, POSITIONS // positions, MACS // max(macs, 1)))
            widest = max(widest, (x.numel() + output.numel()) * 4)
    cap = max(1, STREAM_BYTES // (LIVE_TENSORS * widest))
    return {key: min(count, cap) for key, count in counts.items()}


def _channel_errors(function: LayerFunction, layer: QuantizedLayer, x_q: torch.Tensor, targets: list[torch.Tensor],
                    weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Σ over samples and positions of the squared output error per output channel, at `scale`."""
    w_q = torch.clamp(torch.round(weight / scale), layer.low, layer.high) * scale
    total = None
    for part, target in zip(batched(len(x_q), BATCH), targets):
        error = (function(x_q[part], w_q, bias)[1] - target).square()
        axis = layer.output_axis % error.dim()
        sums = error.sum(dim=[d for d in range(error.dim()) if d != axis], dtype=torch.float64)
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
    bias_dequantize = dequantize_of(layer.bias)
    grid = bias_scale(bias_dequantize)
    bias_scale_value = bias_dequantize.inputs[1]
    bias_scale_value.const_value = ir.tensor(grid.reshape(bias_scale_value.const_value.shape.dims),
                                             name=bias_scale_value.name)
    info = np.iinfo(np.int32)
    axis = bias_dequantize.attributes["axis"].value if "axis" in bias_dequantize.attributes else 0
    bias_codes = quantize_array(bias, grid, np.zeros((), np.int64), axis, info.min, info.max, wide=True)
    layer.bias.const_value = ir.tensor(bias_codes.astype(np.int32), name=layer.bias.name)

"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"): each
integer weight chooses to round its W/s down or up so that the layer's output on the calibration samples
stays closest to the float layer's, with the scales fixed.

Per layer (qconvert/train/layerwise.py), in graph order:

    W~ = s·(clip(floor(W/s) + h(V), low, high) - z),  h(V) = clip(sigmoid(V)·(ζ - γ) + γ, 0, 1),  ζ=1.1, γ=-0.1
    loss = Σ_c mean (f_a(W~, x~) - target)²  +  λ·Σ (1 - |2h(V) - 1|^β)

V starts where h(V) is the fractional part of W/s, so h(V) >= 0.5 (V >= 0) is nearest rounding: before any
step the codes are PTQ's, bit for bit. The regulariser is off for the warm-up fraction, then β falls
linearly from 20 to 2, driving every h(V) to 0 or 1; the codes are floor(W/s) + [V >= 0]. f_a is the layer
with its fused Relu/Clip (the paper's formulation: what the int8 unit outputs); the squared error is summed
over output channels and averaged over the rest, as in AIMET, for which λ = 0.01 is balanced.

The target (`target_inputs`): "float" (the paper's asymmetric reconstruction, the default) is the float
layer on the float IR's input, so a layer also absorbs the errors of the quantized layers before it;
"quantized" is the float layer on the same quantized input x~ (pure weight-rounding error). The quantized
input x~ is always the QDQ IR's own, with the layers before already rounded.

A layer keeps nearest rounding where AdaRound's codes reconstruct worse on the calibration samples (a
guard: it never increases a layer's error). Only the integer weight initializers change; scales, zero
points and biases stay bit for bit, so every backend lowers the result as any other QDQ IR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
import torch
from torch import Tensor

from qconvert.errors import UsageError
from qconvert.quant.calibrate import batch_size_of
from qconvert.train.layerwise import (Feeds, LayerFunction, QuantizedLayer, batched,
                                      bias_dequantized, device_of, limit_samples, optimise_layers, samples_within,
                                      streamed)

ZETA, GAMMA = 1.1, -0.1
# The default steps per layer, measured (bench/label_free_ptq.py, Adam at 1e-2 on V): the tiny mobilenet
# per-tensor's output SQNR 22.6 dB (PTQ) -> 24.7 (500 steps), 24.4 (1000), 24.1 (2000), 24.1 (1000 at lr
# 1e-3, AIMET's rate); the tiny VGG per-channel's 29.3 -> 30.3 at 200 and at 500. The paper's 10k steps at
# 1e-3 take 20x longer on a CPU for no measured gain on these models.

# Samples per run when recording a layer's inputs (the IR's own batch where fixed): the fx interpreter's
# cost is per node, so larger batches record faster.
CAPTURE_BATCH = 256


@dataclass(frozen=True)
class AdaRoundOptions:
    iterations: int = 500  # Adam steps per layer (measured: see above)
    batch: int = 32  # samples per step
    regularization: float = 0.01  # λ
    warmup: float = 0.2  # fraction of the steps without the rounding regulariser
    beta: tuple[float, float] = (20.0, 2.0)  # β from, to
    lr: float = 1e-2  # Adam on V
    samples: int = 1024  # calibration samples used at most (fewer where one pass cannot hold them: stream_samples)
    memory_mb: float = 1024  # a layer's stored inputs and targets at most (about): fewer samples where larger
    target_inputs: str = "float"  # float | quantized (see the module docstring)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self):
        checks = (("iterations", self.iterations >= 0), ("batch", self.batch >= 1),
                  ("regularization", self.regularization >= 0), ("warmup", 0.0 <= self.warmup <= 1.0),
                  ("beta", len(self.beta) == 2 and min(self.beta) > 0), ("lr", self.lr > 0),
                  ("samples", self.samples >= 1), ("memory_mb", self.memory_mb > 0),
                  ("threads", self.threads is None or self.threads >= 1))
        for name, ok in checks:
            if not ok:
                raise UsageError(f"adaround {name} {getattr(self, name)!r} is out of range")
        if self.target_inputs not in ("float", "quantized"):
            raise UsageError(f"adaround target_inputs must be float or quantized, got {self.target_inputs!r}")


def rectified_sigmoid(v: Tensor) -> Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def initial_rounding(layer: QuantizedLayer) -> tuple[np.ndarray, np.ndarray]:
    """(floor(W/s) + z, V): V with h(V) the fractional part of W/s, its sign nearest rounding as
    qconvert.quant.params rounds (W/s in float32, half to even), ties included."""
    s = layer.shaped(layer.scale).astype(np.float32)
    z = layer.shaped(layer.zero).astype(np.float32)
    ratio = (layer.weight / s).astype(np.float32)
    base = np.floor(ratio)
    up = (np.round(ratio) - base) > 0
    fraction = np.clip(ratio - base, 0.0, 1.0)
    p = np.clip((fraction - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6)
    v = np.log(p / (1 - p)).astype(np.float32)
    v = np.where(up, np.maximum(v, 0.0), np.minimum(v, -1e-6)).astype(np.float32)
    return (base + z).astype(np.float32), v


def hard_codes(layer: QuantizedLayer, base: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.clip(base + (v >= 0), layer.low, layer.high)


def adaround(qdq: ir.Model, float_model: ir.Model, calib: Feeds, options: AdaRoundOptions = AdaRoundOptions()
             ) -> tuple[ir.Model, dict]:
    """A copy of the QDQ IR with AdaRound's integer weights, and facts for the report: per layer the
    reconstruction MSE with nearest rounding and with AdaRound's (on the calibration samples), which was
    kept and its MSE (`mse`), the share of weights AdaRound rounds the other way, and the seconds taken."""
    device = device_of(options.device)
    calib = limit_samples(calib, options.samples)
    batch = batch_size_of(qdq, CAPTURE_BATCH)

    def round_layer(layer: QuantizedLayer, x_q: Tensor, x_ref: Tensor | None, opset: int) -> dict:
        return _round_layer(layer, x_q, x_ref, opset, options, device)

    return optimise_layers(qdq, float_model, "adaround", options, options.seed,
                           streamed(float_model, calib, batch, device, options.target_inputs == "float", round_layer),
                           _not_rounded_from_float)


def _not_rounded_from_float(layer: QuantizedLayer) -> str | None:
    """A QAT-trained IR, or a float IR it was not quantized from: W/s then says nothing of its codes."""
    base, v = initial_rounding(layer)
    if np.abs(hard_codes(layer, base, v) - layer.codes.const_value.numpy()).max(initial=0) > 1:
        return "integer weights are not the float weight rounded"
    return None


def _round_layer(layer: QuantizedLayer, x_q: Tensor, x_ref: Tensor | None, opset: int, options: AdaRoundOptions,
                 device: torch.device) -> dict:
    """Optimise one layer's rounding in place in the QDQ IR (as rounded so far), on its input there `x_q`
    and, for the "float" target, the float IR's `x_ref`."""
    target_kind = "quantized" if x_ref is None else "float"
    budget = int(options.memory_mb * (1 << 20))
    count = samples_within(budget // 2, x_q)
    x_q = x_q[:count]
    x_ref = x_q if x_ref is None else x_ref[:count]
    function = LayerFunction(layer, tuple(x_q.shape), opset).to(device)
    weight = torch.from_numpy(layer.weight).to(device)
    float_bias = layer.bias_float if layer.bias_float is not None else bias_dequantized(layer)
    b_float = torch.from_numpy(float_bias).to(device) if float_bias is not None else None
    b_q = bias_dequantized(layer)
    b_q = torch.from_numpy(b_q).to(device) if b_q is not None else None
    with torch.no_grad():
        target = torch.cat([function(x_ref[part], weight, b_float)[1] for part in batched(len(x_ref), CAPTURE_BATCH)])
    count = samples_within(budget, x_q, target)
    x_q, target = x_q[:count], target[:count]
    del x_ref

    base_np, v_np = initial_rounding(layer)
    nearest = hard_codes(layer, base_np, v_np)
    scale = torch.from_numpy(layer.shaped(layer.scale).astype(np.float32)).to(device)
    zero = torch.from_numpy(layer.shaped(layer.zero).astype(np.float32)).to(device)
    base = torch.from_numpy(base_np).to(device)
    axis = layer.output_axis

    def soft_weight(v: Tensor) -> Tensor:
        return (torch.clamp(base + rectified_sigmoid(v), layer.low, layer.high) - zero) * scale

    def reconstruction(y: Tensor, t: Tensor) -> Tensor:
        return (y - t).square().sum(dim=axis).mean()

    def mse(codes: np.ndarray) -> float:
        w = torch.from_numpy(layer.dequantize(codes)).to(device)
        total = 0.0
        with torch.no_grad():
            for part in batched(count, CAPTURE_BATCH):
                total += float((function(x_q[part], w, b_q)[1] - target[part]).square().sum())
        return total / target.numel()

    v = torch.nn.Parameter(torch.from_numpy(v_np).to(device))
    optimizer = torch.optim.Adam([v], lr=options.lr)
    order = torch.Generator().manual_seed(options.seed)
    warm = int(options.warmup * options.iterations)
    start_beta, end_beta = options.beta
    for step in range(options.iterations):
        index = torch.randint(count, (min(options.batch, count),), generator=order).to(device)
        y = function(x_q[index], soft_weight(v), b_q)[1]
        loss = reconstruction(y, target[index])
        if step >= warm:
            progress = (step - warm) / max(options.iterations - warm, 1)
            beta = end_beta + (start_beta - end_beta) * (1.0 - progress)
            h = rectified_sigmoid(v)
            loss = loss + options.regularization * (1.0 - (2.0 * h - 1.0).abs().pow(beta)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rounded = hard_codes(layer, base_np, v.detach().cpu().numpy())
    before, after = mse(nearest), mse(rounded)
    kept = "adaround" if after <= before else "nearest"
    codes = rounded if kept == "adaround" else nearest
    value = layer.codes
    value.const_value = ir.tensor(codes.astype(value.const_value.dtype.numpy()), name=value.name)
    return {"layer": layer.name, "op": layer.node.op_type, "weights": int(codes.size), "samples": int(count),
            "target": target_kind,
            "mse_nearest": before, "mse_adaround": after, "kept": kept, "mse": min(before, after),
            "flipped": float(np.mean(rounded != nearest))}

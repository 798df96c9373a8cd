"""Scales and zero points from ranges, and the quantize/dequantize arithmetic they imply.

The formulas are onnxruntime.quantization's (`compute_scale_zp`), so a range gives the same scale here
as there: the range is widened to include 0 (0 must be exact), affine maps [lo, hi] onto [qmin, qmax],
symmetric maps [-max|x|, max|x|] onto it with the zero point in the middle.
"""

from __future__ import annotations

import numpy as np

QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
WEIGHT_QMAX = 127  # weights: int8 narrow range [-127, 127], symmetric, zero point 0


def activation_params(lo: float, hi: float, dtype: str = "int8", symmetric: bool = False
                      ) -> tuple[np.float32, int]:
    """(scale, zero point) for an activation range."""
    qmin, qmax = QRANGE[dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        absmax = max(-lo, hi)
        lo, hi = -absmax, absmax
    if hi == lo:  # an all-zero tensor: any scale is exact
        return np.float32(1.0), int(np.round((qmin + qmax) / 2.0)) if symmetric else 0
    scale = np.float32((hi - lo) / (qmax - qmin))
    if symmetric:
        zero_point = int(np.round((qmin + qmax) / 2.0))
    else:
        zero_point = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    return scale, zero_point


def weight_scales(weight: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric narrow-range int8 scales: max|w| / 127 per slice along `axis` (None: one for all)."""
    w = np.abs(np.asarray(weight, dtype=np.float32))
    if axis is None:
        absmax = np.array(w.max() if w.size else 0.0, dtype=np.float32)
    else:
        absmax = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).max(axis=1)
    absmax = np.where(absmax > 0, absmax, 1.0)  # a zero channel stays zero with any scale
    return (absmax / WEIGHT_QMAX).astype(np.float32)


def quantize_weight(weight: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    shape = [1] * weight.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.round(weight / scales.reshape(shape))
    return np.clip(q, -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)


def quantize_bias(bias: np.ndarray, input_scale: np.float32, weight_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with scale s_in·s_w (per channel), zero point 0: it adds straight into the int32 accumulator."""
    scale = (np.float32(input_scale) * weight_scales).astype(np.float32)
    q = np.round(bias.astype(np.float64) / scale.astype(np.float64))
    info = np.iinfo(np.int32)
    return np.clip(q, info.min, info.max).astype(np.int32), scale


def fake_quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str = "int8") -> np.ndarray:
    """quantize then dequantize, as a QuantizeLinear → DequantizeLinear pair computes it."""
    qmin, qmax = QRANGE[dtype]
    q = np.clip(np.round(np.asarray(x) / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)

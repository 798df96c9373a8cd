"""Observers: each sees a tensor's calibration values batch by batch and proposes a range [lo, hi].

minmax           the extremes seen
moving-average   extremes per sample, averaged with an exponential moving average (constant 0.01, as
                 onnxruntime's MinMaxCalibrater), so rare outliers move the range little
percentile:P     the P-th and (100-P)-th percentiles of all values seen
entropy          the clipping range whose 256-level quantized histogram is closest in KL divergence to
                 the full histogram (TensorRT's calibration)
mse              the clipping range with the least expected squared error: clipping error outside it
                 plus the uniform rounding noise scale²/12 inside

The histogram methods need the extremes before they can bin, so calibration runs the data twice:
`needs_histogram` observers get `observe` in the first pass and `observe_histogram` in the second.
"""

from __future__ import annotations

import numpy as np

from qconvert.quant.params import QRANGE, activation_params

BINS = 2048
MOVING_AVERAGE_CONSTANT = 0.01


class MinMax:
    needs_histogram = False

    def __init__(self):
        self.lo, self.hi = np.inf, -np.inf

    def observe(self, batch: np.ndarray) -> None:
        if batch.size:
            self.lo = min(self.lo, float(batch.min()))
            self.hi = max(self.hi, float(batch.max()))

    def range(self) -> tuple[float, float]:
        return (self.lo, self.hi) if self.lo <= self.hi else (0.0, 0.0)


class MovingAverage(MinMax):
    def __init__(self, constant: float = MOVING_AVERAGE_CONSTANT):
        super().__init__()
        self.constant = constant
        self.seen = False

    def observe(self, batch: np.ndarray) -> None:
        if not batch.size:
            return
        flat = batch.reshape(batch.shape[0], -1) if batch.ndim > 1 else batch.reshape(1, -1)
        for lo, hi in zip(flat.min(axis=1), flat.max(axis=1)):  # one step per sample, not per batch
            if not self.seen:
                self.lo, self.hi, self.seen = float(lo), float(hi), True
            else:
                self.lo += self.constant * (float(lo) - self.lo)
                self.hi += self.constant * (float(hi) - self.hi)


class _Histogram(MinMax):
    """First pass: extremes (MinMax.observe). Second pass: a BINS-bin histogram over them."""

    needs_histogram = True

    def __init__(self, dtype: str = "int8", symmetric: bool = False):
        super().__init__()
        self.dtype, self.symmetric = dtype, symmetric
        self.counts = np.zeros(BINS, dtype=np.float64)

    def observe_histogram(self, batch: np.ndarray) -> None:
        lo, hi = MinMax.range(self)
        if hi > lo:
            self.counts += np.histogram(batch, bins=BINS, range=(lo, hi))[0]

    def edges(self) -> np.ndarray:
        lo, hi = MinMax.range(self)
        return np.linspace(lo, hi, BINS + 1)

    def windows(self, smallest: int = 256, step: int = 8):
        """Candidate clipping windows [i0, i1) of bins, shrinking the full range about zero."""
        lo, hi = MinMax.range(self)
        zero = 0.0 if lo >= 0 else (1.0 if hi <= 0 else -lo / (hi - lo))  # zero's position in [0, 1]
        for width in range(BINS, smallest - 1, -step):
            i0 = int(round(zero * (BINS - width)))
            yield i0, i0 + width

    def range(self) -> tuple[float, float]:
        lo, hi = MinMax.range(self)
        if hi <= lo or self.counts.sum() == 0:
            return lo, hi
        edges = self.edges()
        i0, i1 = self.best_window()
        return float(edges[i0]), float(edges[i1])

    def best_window(self) -> tuple[int, int]:
        raise NotImplementedError


class Percentile(_Histogram):
    def __init__(self, percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.percentile = percentile

    def best_window(self) -> tuple[int, int]:
        cdf = np.cumsum(self.counts) / self.counts.sum()
        tail = (100.0 - self.percentile) / 100.0
        # Smallest bin range holding all but `tail` of the values on each side.
        i0 = int(np.searchsorted(cdf, tail, side="right")) if tail > 0 else 0
        i1 = int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1 if tail > 0 else BINS
        return min(i0, i1 - 1), min(i1, BINS)


class _SkipZeros(_Histogram):
    """Exact zeros (a Relu's output is often half zeros) quantize without error under every candidate
    range; left in, their spike decides the choice (KL smears it over a level's bins)."""

    def observe_histogram(self, batch: np.ndarray) -> None:
        super().observe_histogram(batch[batch != 0])


class Entropy(_SkipZeros):
    def best_window(self) -> tuple[int, int]:
        qmin, qmax = QRANGE[self.dtype]
        levels = qmax - qmin + 1
        best, best_kl = (0, BINS), np.inf
        for i0, i1 in self.windows(smallest=levels):
            kl = _kl_divergence(self.counts, i0, i1, levels)
            if kl < best_kl:
                best, best_kl = (i0, i1), kl
        return best


class Mse(_SkipZeros):
    def best_window(self) -> tuple[int, int]:
        edges = self.edges()
        centers = (edges[:-1] + edges[1:]) / 2
        best, best_error = (0, BINS), np.inf
        for i0, i1 in self.windows():
            lo, hi = edges[i0], edges[i1]
            scale, _ = activation_params(lo, hi, self.dtype, self.symmetric)
            clip = np.clip(centers, lo, hi)
            inside = self.counts[i0:i1].sum()
            error = float(np.sum(self.counts * (centers - clip) ** 2) + inside * float(scale) ** 2 / 12.0)
            if error < best_error:
                best, best_error = (i0, i1), error
        return best


def _kl_divergence(counts: np.ndarray, i0: int, i1: int, levels: int) -> float:
    """KL(P‖Q): P = the histogram clipped to bins [i0, i1) with the outliers added to the edge bins
    (what clipping does to them); Q = the bins inside, without outliers, merged into `levels` equal
    groups, each group's mass spread over its nonzero bins (what rounding does to them)."""
    inside = counts[i0:i1]
    p = inside.copy()
    p[0] += counts[:i0].sum()
    p[-1] += counts[i1:].sum()
    group = (np.arange(len(inside)) * levels) // len(inside)  # bin -> quantization level
    mass = np.bincount(group, weights=inside, minlength=levels)
    filled = np.bincount(group, weights=inside > 0, minlength=levels)
    q = np.where(inside > 0, mass[group] / np.maximum(filled[group], 1), 0.0)
    total_p, total_q = p.sum(), q.sum()
    if total_p == 0 or total_q == 0:
        return np.inf
    p, q = p / total_p, q / total_q
    # P has mass where Q has none only at an edge bin that is empty inside (outliers folded in):
    # smooth Q there (as TensorRT and onnxruntime do) so such a window scores high, not infinite.
    q = np.where((p > 0) & (q == 0), 1e-4, q)
    mask = p > 0
    p, q = p[mask], q[mask] / q.sum()
    return float(np.sum(p * np.log(p / q)))


def make_observer(method: str, percentile: float = 99.99, dtype: str = "int8", symmetric: bool = False):
    if method == "minmax":
        return MinMax()
    if method == "moving-average":
        return MovingAverage()
    if method == "percentile":
        return Percentile(percentile, dtype=dtype, symmetric=symmetric)
    if method == "entropy":
        return Entropy(dtype=dtype, symmetric=symmetric)
    if method == "mse":
        return Mse(dtype=dtype, symmetric=symmetric)
    raise ValueError(f"unknown calibration method {method}")

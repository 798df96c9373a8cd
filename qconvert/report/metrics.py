"""Parity metrics between a reference output and an artifact's output."""

from __future__ import annotations

import numpy as np


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, 10·log10(Σref² / Σ(ref−actual)²); inf when identical."""
    reference = np.asarray(reference, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    noise = float(np.sum((reference - actual) ** 2))
    signal = float(np.sum(reference**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * np.log10(signal / noise)


def max_abs_error(reference: np.ndarray, actual: np.ndarray) -> float:
    diff = np.abs(np.asarray(reference, dtype=np.float64) - np.asarray(actual, dtype=np.float64))
    return float(diff.max()) if diff.size else 0.0


def looks_like_class_scores(output: np.ndarray) -> bool:
    """A [batch, classes] output with several classes."""
    return output.ndim == 2 and 2 <= output.shape[1] <= 100_000


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Share of rows whose arg-max class is the same, in [0, 1]."""
    return float(np.mean(np.argmax(reference, axis=1) == np.argmax(actual, axis=1)))

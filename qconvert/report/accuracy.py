"""Task metrics on an evaluation set (--eval): top-1 for classifiers, Dice and IoU for masks, cosine
similarity to the source's outputs for embeddings.

Units: top-1 in percent; Dice, IoU and cosine in [0, 1]. `--max-drop` is read in the same units.
"""

from __future__ import annotations

import numpy as np

from qconvert.errors import UsageError

METRICS = ("top1", "dice", "cosine")


def infer_metric(output: np.ndarray, labels: np.ndarray) -> str:
    """top1 for [N, classes] scores with integer labels, dice for a 0/1 mask of the output's size,
    otherwise cosine (to the source's outputs)."""
    if output.ndim == 2 and output.shape[1] > 1 and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        return "top1"
    if labels.size == output.size and np.isin(np.unique(labels), (0, 1)).all():
        return "dice"
    return "cosine"


def mask_threshold(reference: np.ndarray) -> float:
    """0.5 for probabilities (the source's outputs lie in [0, 1]), 0 for logits: chosen once, on the
    source, so that every artifact is thresholded alike."""
    return 0.5 if reference.min() >= 0.0 and reference.max() <= 1.0 else 0.0


def evaluate(metric: str, output: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """`output` and `reference` (the source's output on the same inputs) are each a model's first output."""
    if metric == "top1":
        if output.ndim != 2 or len(labels) != len(output):
            raise UsageError(f"--metric top1 needs [samples, classes] scores; the output is {list(output.shape)}")
        return {"top1": float(np.mean(np.argmax(output, axis=1) == labels.reshape(-1)) * 100.0)}
    if metric == "dice":
        if labels.size != output.size:
            raise UsageError(f"--metric dice needs a mask of the output's size: labels {list(labels.shape)}, "
                             f"output {list(output.shape)}")
        threshold = mask_threshold(reference)
        predicted = output.reshape(-1) > threshold
        truth = labels.reshape(-1) > 0.5
        overlap = np.logical_and(predicted, truth).sum()
        total = predicted.sum() + truth.sum()
        union = np.logical_or(predicted, truth).sum()
        return {"dice": float(2 * overlap / total) if total else 1.0,
                "iou": float(overlap / union) if union else 1.0}
    if metric == "cosine":
        a = output.reshape(len(output), -1).astype(np.float64)
        b = reference.reshape(len(reference), -1).astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = np.where(norms > 0, np.sum(a * b, axis=1) / np.maximum(norms, 1e-30), 1.0)
        return {"cosine": float(np.mean(cosine))}
    raise UsageError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


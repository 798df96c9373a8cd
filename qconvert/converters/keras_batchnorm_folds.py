"""The BatchNorm folds TensorFlow made on the way through tf2onnx, recorded as the IR's fold factors.

TensorFlow's graph optimiser folds each inference BatchNormalization into the Conv before it (the IR's
weight is then `<conv>/Conv2D_weights_fused_bn`), so the IR has no BatchNorm for qconvert's FoldBatchNorm to
fold and record. `--prune-magnitudes trained` and `--prune-importance bn` need what was folded
(qconvert/ir/fold_factors.py), so it is read back from the Keras model: every BatchNormalization on the
channels-last axis whose input a Conv, DepthwiseConv or Dense layer produced gives its gamma and gamma /
sqrt(var + eps), kept only where an IR initializer of that layer's kernel shape (in ONNX's layout) equals
the kernel times it.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors

logger = logging.getLogger(__name__)


def _layers(model) -> list:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_layers(layer))  # nested models
    return found


def _array(variable) -> np.ndarray | None:
    return None if variable is None else np.array(variable, dtype=np.float64)


def _onnx_layout(kind: str, kernel: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The kernel as tf2onnx writes it, and the axis of its output channels there."""
    rank = kernel.ndim
    if kind.startswith("DepthwiseConv") and rank >= 3:  # (spatial..., C, M) -> (C·M, 1, spatial...)
        moved = np.moveaxis(kernel, (rank - 2, rank - 1), (0, 1))
        return moved.reshape(-1, 1, *moved.shape[2:]), 0
    if kind.startswith("Conv") and "Transpose" not in kind and rank >= 3:  # (spatial..., I, O) -> (O, I, ...)
        return np.moveaxis(kernel, (rank - 1, rank - 2), (0, 1)), 0
    if kind == "Dense" and rank == 2:  # MatMul's [in, out]
        return kernel, 1
    return None


def record_keras_folds(model: ir.Model, keras_model) -> int:
    """Record on `model`'s graph the factor of each BatchNormalization TensorFlow folded; returns how many."""
    folded = fold_factors.FoldedWeights(model.graph)
    recorded = 0
    for layer in _layers(keras_model):
        if type(layer).__name__ != "BatchNormalization":
            continue
        try:
            found = _fold_factor(layer, folded)
        except Exception as error:  # noqa: BLE001 (a shared layer, one without weights, an unknown layout)
            # a hint for pruning, never a reason to refuse a model: its weights then rank as they are
            logger.debug("fold factor of %s not read: %s", layer.name, error)
            continue
        if found is not None:
            fold_factors.record(model.graph, *found)
            recorded += 1
    return recorded


def _fold_factor(layer, folded: fold_factors.FoldedWeights) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(the IR weight's name, its factor, the gamma) where BatchNormalization `layer` was folded into its
    input's layer."""
    producer = layer.input._keras_history[0]
    kernel = producer.get_weights()[0]
    laid_out = _onnx_layout(type(producer).__name__, np.asarray(kernel, np.float64))
    axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) and len(layer.axis) == 1 else layer.axis
    if laid_out is None or axis not in (-1, len(layer.input.shape) - 1):  # channels last only
        return None
    weight, out_axis = laid_out
    fold = fold_factors.batchnorm_fold(weight, out_axis, _array(getattr(layer, "gamma", None)),
                                       _array(layer.moving_variance), float(layer.epsilon))
    if fold is None:
        return None
    name = folded.find(weight, fold[0])
    return None if name is None else (name, *fold)

"""The BatchNorm folds torch.onnx's TorchScript exporter made, recorded as the IR's fold factors.

The TorchScript exporter (dynamo=False) folds an eval-mode BatchNorm into the Conv before it and names the
product anew (`onnx::Conv_24`); one it does not fold (after a ConvTranspose, say) stays a
BatchNormalization in the IR for qconvert's own FoldBatchNorm, which records it. `--prune-magnitudes
trained` and `--prune-importance bn` need what the exporter folded (qconvert/ir/fold_factors.py), so it is
read back from the TorchScript module: each BatchNorm submodule, with the Conv or Linear submodule defined
just before it, gives its gamma and gamma / sqrt(var + eps), kept only where an IR initializer of the
layer's weight shape equals the weight times it. A TorchScript file keeps its submodules but not which
feeds which; the definition order is the convention (Conv, then its BatchNorm) that the check confirms.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors

logger = logging.getLogger(__name__)

# submodule kind -> the output axis of its weight
_LAYERS = {"Conv1d": 0, "Conv2d": 0, "Conv3d": 0, "Linear": 0,
           "ConvTranspose1d": 1, "ConvTranspose2d": 1, "ConvTranspose3d": 1}


def _kind(module) -> str:
    return getattr(module, "original_name", type(module).__name__)


def _array(tensor) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().double().cpu().numpy()


def _eps(batchnorm) -> float:
    """A scripted BatchNorm keeps eps as a constant; a traced one has it in its graph's batch_norm call."""
    if getattr(batchnorm, "eps", None) is not None:
        return float(batchnorm.eps)
    calls = list(batchnorm.graph.findAllNodes("aten::batch_norm"))
    return float(list(calls[0].inputs())[7].toIValue())


def record_torchscript_folds(model: ir.Model, module) -> int:
    """Record on `model`'s graph the factor of each BatchNorm the exporter folded (the TorchScript `module`
    it was exported from); returns how many."""
    folded = fold_factors.FoldedWeights(model.graph)
    recorded, layer = 0, None
    for name, submodule in module.named_modules():
        kind = _kind(submodule)
        if kind in _LAYERS:
            layer = submodule
            continue
        if not kind.startswith("BatchNorm") or layer is None:
            continue
        try:
            found = _fold_factor(submodule, layer, folded)
        except Exception as error:  # noqa: BLE001 (no running statistics, an unusual graph)
            # a hint for pruning, never a reason to refuse a model: its weights then rank as they are
            logger.debug("fold factor of %s not read: %s", name, error)
            found = None
        if found is not None:
            fold_factors.record(model.graph, *found)
            recorded += 1
        layer = None  # one BatchNorm per layer
    return recorded


def _fold_factor(batchnorm, layer, folded: fold_factors.FoldedWeights) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(the IR weight's name, its factor, the gamma) where `batchnorm` was folded into `layer`."""
    weight = _array(layer.weight)
    fold = fold_factors.batchnorm_fold(weight, _LAYERS[_kind(layer)], _array(getattr(batchnorm, "weight", None)),
                                       _array(batchnorm.running_var), _eps(batchnorm))
    if fold is None:
        return None
    name = folded.find(weight, fold[0])
    return None if name is None else (name, *fold)

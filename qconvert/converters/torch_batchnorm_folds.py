"""The BatchNorm folds torch.onnx's exporter made, recorded as the IR's fold factors.

The dynamo exporter's optimiser (onnxscript's fuse_batchnorm rule) folds each eval-mode BatchNorm into the
Conv, ConvTranspose or Linear before it and keeps the layer's weight name; the IR then has no BatchNorm for
qconvert's own FoldBatchNorm to fold and record. `--prune-magnitudes trained` and `--prune-importance bn`
need what was folded (qconvert/ir/fold_factors.py), so it is read back from the ExportedProgram: every
batch-norm node fed by a layer whose weight is a parameter gives its gamma and gamma / sqrt(var + eps) along
that weight's output axis, kept only where the exported initializer equals the torch weight times it (a fold
the exporter did not make leaves the BatchNorm in the IR, for FoldBatchNorm).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors

logger = logging.getLogger(__name__)

# aten layer -> (weight argument, output axis of the weight)
_LAYERS = {"conv1d": (1, 0), "conv2d": (1, 0), "conv3d": (1, 0), "linear": (1, 0),
           "conv_transpose1d": (1, 1), "conv_transpose2d": (1, 1), "conv_transpose3d": (1, 1)}
# aten batch norm -> position of eps
_BATCH_NORMS = {"_native_batch_norm_legit_no_training": 6, "batch_norm": 7}


def _aten_name(node) -> str:
    target = getattr(node, "target", None)
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def _layer(node) -> tuple[object, int] | None:
    """(the weight's fx node, its output axis) of an aten conv / linear node."""
    name = _aten_name(node)
    if name in _LAYERS:
        index, axis = _LAYERS[name]
        return node.args[index], axis
    if name == "convolution":  # (input, weight, bias, stride, padding, dilation, transposed, ...)
        return node.args[1], 1 if node.args[6] else 0
    return None


def record_exporter_folds(model: ir.Model, program) -> int:
    """Record on `model`'s graph the factor of each BatchNorm the exporter folded (the ExportedProgram
    `program` it was exported from); returns how many."""
    import torch

    signature = program.graph_signature
    names = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
    tensors = {**program.state_dict, **getattr(program, "constants", {})}

    def array(node) -> np.ndarray | None:
        fqn = names.get(getattr(node, "name", None))
        tensor = tensors.get(fqn)
        return tensor.detach().double().cpu().numpy() if isinstance(tensor, torch.Tensor) else None

    recorded = 0
    initializers = model.graph.initializers
    for node in program.graph.nodes:
        try:
            found = _fold_factor(node, names, array, initializers)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
            # a hint for pruning, never a reason to refuse a model: its weights then rank as they are
            logger.debug("fold factor of %s not read: %s", node, error)
            continue
        if found is not None:
            fold_factors.record(model.graph, *found)
            recorded += 1
    return recorded


def _fold_factor(node, names: dict, array, initializers) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(the layer weight's initializer name, its factor, the gamma) where `node` is a batch norm the exporter
    folded."""
    eps_at = _BATCH_NORMS.get(_aten_name(node)) if node.op == "call_function" else None
    if eps_at is None or len(node.args) <= eps_at or not hasattr(node.args[0], "target"):
        return None
    layer = _layer(node.args[0])
    if layer is None:
        return None
    weight_node, axis = layer
    fqn = names.get(getattr(weight_node, "name", None))
    weight, gamma, var = array(weight_node), array(node.args[1]), array(node.args[4])
    value = initializers.get(fqn) if fqn is not None else None
    if weight is None or var is None or value is None or value.const_value is None:
        return None
    fold = fold_factors.batchnorm_fold(weight, axis, gamma, var, float(node.args[eps_at]))
    if fold is None or not fold_factors.is_folded(value.const_value.numpy(), weight, fold[0]):
        return None
    return fqn, *fold

"""Pruned weights held at zero while training: keep-masks by initializer name, and their hold on a program's
Parameters.

A pruned weight whose gradient is zero from the first step never moves under Adam (its moments stay zero),
but one step with a gradient would leave momentum that moves it for many steps after. So both: gradients
of pruned weights are zeroed as they are computed, and the weights are multiplied by their masks after
every optimizer step. In QAT the mask is on an integer weight's float shadow (fake_quant.py), named after
the float initializer it was quantized from (insert_qdq's `<name>_quantized`): a zero shadow is code 0
under a symmetric weight quantizer, so the written-back int8 weight is integer zero there.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import torch

from qconvert.ir.layer_weights import layer_weights
from qconvert.train.program import TrainableProgram

Masks = dict[str, np.ndarray]  # initializer name -> bool array, True where the weight is kept

QUANTIZED_SUFFIX = "_quantized"  # qconvert.passes.insert_qdq's name for a weight's integer initializer


def weight_masks(model: ir.Model, names: list[str]) -> Masks:
    """Keep-masks of the named initializers of `model`: False where pruning left a zero."""
    initializers = model.graph.initializers
    missing = [name for name in names if name not in initializers or initializers[name].const_value is None]
    if missing:
        raise ValueError(f"weight masks: no initializer {missing[0]!r} in the model")
    return {name: initializers[name].const_value.numpy() != 0 for name in names}


def layer_zero_masks(model: ir.Model) -> Masks:
    """Keep-masks of every layer weight of `model` (qconvert.ir.layer_weights) that holds a zero: the masks
    of a pruned IR after a rewrite. The int8 preparation folds and unfolds weights under new names, and
    their pruned zeros stay zeros (a weight scaled per channel, a kernel's taps moved or dilated)."""
    return {w.name: w.array != 0 for w in layer_weights(model) if not np.all(w.array)}


def _masked_parameters(program: TrainableProgram, masks: Masks) -> list[tuple[str, torch.nn.Parameter, np.ndarray]]:
    """(initializer, Parameter, mask) for every mask: the Parameter standing for the initializer, or for
    its quantized form in a QAT program. Every mask must find one of its shape."""
    by_name = {name: attr for attr, name in program.parameters.items()}
    for attr, name in getattr(program, "shadows", {}).items():
        by_name[name.removesuffix(QUANTIZED_SUFFIX)] = attr
    found = []
    for name, mask in masks.items():
        attr = by_name.get(name)
        if attr is None:
            raise ValueError(f"weight masks: the training program has no parameter for pruned weight {name!r}")
        parameter = program.module.get_parameter(attr)
        if tuple(parameter.shape) != mask.shape:
            raise ValueError(f"weight masks: {name!r} is {list(mask.shape)} pruned, {list(parameter.shape)} in "
                             f"the training program")
        found.append((name, parameter, mask))
    return found


class HeldZeros:
    """Holds the pruned weights of `program` at zero: gradient hooks now, `apply()` after each optimizer
    step, `remove()` when training ends."""

    def __init__(self, program: TrainableProgram, masks: Masks):
        self._held, self._hooks = [], []
        for _, parameter, mask in _masked_parameters(program, masks):
            keep = torch.from_numpy(np.ascontiguousarray(mask)).to(parameter.device, parameter.dtype)
            self._held.append((parameter, keep))
            if parameter.requires_grad:
                self._hooks.append(parameter.register_hook(lambda grad, keep=keep: grad * keep))
        self.apply()

    def apply(self) -> None:
        with torch.no_grad():
            for parameter, keep in self._held:
                parameter.mul_(keep)

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

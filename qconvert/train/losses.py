"""Training losses on the model's first output, chosen from the task (qconvert/train/data.py) and from the op
that computes the output:

    labels, top1     cross-entropy                 class scores (Softmax probabilities are read as log p)
    labels, dice     BCE + soft Dice               probabilities after a Sigmoid, logits otherwise
    labels, cosine   MSE
    no labels        distillation from the float IR's outputs: KL at a temperature for class scores
                     (report.metrics.looks_like_class_scores, as the report decides), MSE otherwise
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx_ir as ir
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.report.metrics import looks_like_class_scores

# Ops that only move data: an output computed by Sigmoid then Transpose is still probabilities.
MOVES = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}  # a QDQ IR's output is still what its producer computed
PROBABILITIES = {"Sigmoid", "HardSigmoid"}
TINY = 1e-12  # log(0) guard for probabilities read as log-probabilities


@dataclass(frozen=True)
class Loss:
    name: str
    function: Callable[[Tensor, Tensor], Tensor]  # (the program's first output, its target) -> scalar

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return self.function(output, target)


def output_activation(model: ir.Model) -> str | None:
    """The op computing the first output, looked for through ops that only move data."""
    node = model.graph.outputs[0].producer()
    while node is not None and node.op_type in MOVES | QDQ and node.inputs and node.inputs[0] is not None:
        node = node.inputs[0].producer()
    return node.op_type if node is not None else None


def as_log_scores(scores: Tensor, activation: str | None) -> Tensor:
    """Class scores as logits (up to a constant per row, which softmax ignores)."""
    return torch.log(scores.clamp_min(TINY)) if activation == "Softmax" else scores


def cross_entropy(scores: Tensor, labels: Tensor, activation: str | None = None) -> Tensor:
    return F.cross_entropy(as_log_scores(scores, activation), labels)


def soft_dice(probabilities: Tensor, mask: Tensor, smooth: float = 1.0) -> Tensor:
    """1 - (2·Σpt + smooth) / (Σp + Σt + smooth), over the whole batch (the UNet reference's Dice term)."""
    overlap = (probabilities * mask).sum()
    return 1.0 - (2.0 * overlap + smooth) / (probabilities.sum() + mask.sum() + smooth)


def bce_dice(output: Tensor, mask: Tensor, probabilities: bool) -> Tensor:
    """BCE keeps early gradients well-behaved; Dice counters a mostly-background mask."""
    if probabilities:
        return F.binary_cross_entropy(output.clamp(0.0, 1.0), mask) + soft_dice(output, mask)
    return F.binary_cross_entropy_with_logits(output, mask) + soft_dice(torch.sigmoid(output), mask)


def distillation_kl(scores: Tensor, teacher: Tensor, temperature: float, activation: str | None = None) -> Tensor:
    """KL(teacher ‖ student) of the softened distributions, times T² so gradients keep their size
    (Hinton et al. 2015)."""
    student = F.log_softmax(as_log_scores(scores, activation) / temperature, dim=1)
    target = F.log_softmax(as_log_scores(teacher, activation) / temperature, dim=1)
    return F.kl_div(student, target, reduction="batchmean", log_target=True) * temperature ** 2


def choose_loss(model: ir.Model, task: str | None, teacher_output: np.ndarray | None = None,
                temperature: float = 4.0) -> Loss:
    """The loss for labels of `task`, or (task None) for distilling `teacher_output`, the float IR's output."""
    activation = output_activation(model)
    if task == "top1":
        return Loss("cross-entropy", partial(cross_entropy, activation=activation))
    if task == "dice":
        probabilities = activation in PROBABILITIES
        return Loss(f"bce+dice ({'probabilities' if probabilities else 'logits'})",
                    partial(bce_dice, probabilities=probabilities))
    if task is None and teacher_output is not None and looks_like_class_scores(teacher_output):
        return Loss(f"distillation kl (T={temperature:g})",
                    partial(distillation_kl, temperature=temperature, activation=activation))
    return Loss("mse" if task else "distillation mse", F.mse_loss)

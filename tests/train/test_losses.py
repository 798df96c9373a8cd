"""Each training loss on tiny hand-computed data, and which loss a model and its labels get."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qconvert.train.losses import bce_dice, choose_loss, cross_entropy, distillation_kl, output_activation, soft_dice
from tests.passes.helpers import parse
from tests.train.conftest import classifier, segmenter

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
LABELS = torch.tensor([0, 1])
# -log softmax at the label: row 1 -log(e^2 / (e^2 + e + 1)), row 2 -log(1 / (2 + e^3))
CE = (-math.log(math.e ** 2 / (math.e ** 2 + math.e + 1)) - math.log(1 / (2 + math.e ** 3))) / 2


def test_cross_entropy_on_logits_and_on_softmax_probabilities():
    assert cross_entropy(LOGITS, LABELS).item() == pytest.approx(CE, rel=1e-6)
    assert cross_entropy(torch.softmax(LOGITS, 1), LABELS, "Softmax").item() == pytest.approx(CE, rel=1e-5)


def test_soft_dice_on_a_known_mask():
    p = torch.tensor([1.0, 0.0, 1.0, 1.0])
    t = torch.tensor([1.0, 0.0, 0.0, 1.0])
    # overlap 2, Σp 3, Σt 2: 1 - (2·2 + 1) / (3 + 2 + 1)
    assert soft_dice(p, t).item() == pytest.approx(1 / 6)
    assert soft_dice(t, t).item() == 0.0


def test_bce_dice_on_probabilities_and_on_logits():
    logits = torch.tensor([0.0, 2.0, -1.0, 3.0])
    mask = torch.tensor([0.0, 1.0, 0.0, 1.0])
    p = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    bce = -np.mean(mask.numpy() * np.log(p) + (1 - mask.numpy()) * np.log(1 - p))
    dice = 1 - (2 * np.sum(p * mask.numpy()) + 1) / (np.sum(p) + 2 + 1)
    assert bce_dice(logits, mask, probabilities=False).item() == pytest.approx(bce + dice, rel=1e-5)
    assert bce_dice(torch.sigmoid(logits), mask, probabilities=True).item() == pytest.approx(bce + dice, rel=1e-5)


def test_distillation_kl_with_temperature():
    teacher = torch.tensor([[2.0, 1.0, 0.0]])
    student = torch.tensor([[0.0, 1.0, 0.0]])
    T = 2.0
    q = np.exp([1.0, 0.5, 0.0]) / np.exp([1.0, 0.5, 0.0]).sum()  # teacher / T
    s = np.exp([0.0, 0.5, 0.0]) / np.exp([0.0, 0.5, 0.0]).sum()  # student / T
    expected = float(np.sum(q * np.log(q / s))) * T ** 2
    assert distillation_kl(student, teacher, T).item() == pytest.approx(expected, rel=1e-5)
    assert distillation_kl(teacher, teacher, T).item() == pytest.approx(0.0, abs=1e-7)
    # Softmax outputs distil like the logits they came from
    assert distillation_kl(torch.softmax(student, 1), torch.softmax(teacher, 1), T, "Softmax").item() == \
        pytest.approx(expected, rel=1e-4)


def test_the_loss_follows_the_labels_and_the_output_op():
    scores = np.zeros((4, 3), np.float32)
    masks = np.zeros((4, 1, 4, 4), np.float32)
    assert choose_loss(classifier(), "top1").name == "cross-entropy"
    assert choose_loss(classifier(), "cosine").name == "mse"
    assert choose_loss(classifier(), None, scores, 3.0).name == "distillation kl (T=3)"
    assert choose_loss(segmenter("Sigmoid"), "dice").name == "bce+dice (probabilities)"
    assert choose_loss(segmenter("Relu"), "dice").name == "bce+dice (logits)"
    assert choose_loss(segmenter("Sigmoid"), None, masks).name == "distillation mse"


def test_output_activation_looks_through_data_movement():
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 4, 4, 1] x) => (float[N, 1, 4, 4] y)
    { s = Sigmoid (x)
      y = Transpose <perm: ints = [0, 3, 1, 2]> (s) }""")
    assert output_activation(model) == "Sigmoid"
    assert output_activation(classifier()) == "Gemm"

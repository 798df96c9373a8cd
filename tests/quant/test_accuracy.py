"""Task metrics for --eval, by hand on small arrays."""

import numpy as np
import pytest

from qconvert.errors import UsageError
from qconvert.report.accuracy import evaluate, infer_metric


def test_top1_in_percent():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert evaluate("top1", scores, np.array([1, 0, 0, 0]), scores) == {"top1": 75.0}


def test_dice_and_iou_on_probabilities():
    truth = np.array([[1, 1, 0, 0]], np.float32)
    probabilities = np.array([[0.9, 0.2, 0.7, 0.1]], np.float32)  # predicted mask [1, 0, 1, 0]
    metrics = evaluate("dice", probabilities, truth, probabilities)
    assert metrics == {"dice": pytest.approx(2 * 1 / 4), "iou": pytest.approx(1 / 3)}


def test_mask_threshold_is_chosen_on_the_source():
    truth = np.array([[1, 0]], np.float32)
    logits = np.array([[2.0, -3.0]], np.float32)  # the source outputs logits: threshold 0
    assert evaluate("dice", np.array([[0.1, -0.2]], np.float32), truth, logits)["dice"] == 1.0


def test_cosine_to_the_source():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    output = np.array([[1.0, 1.0], [0.0, 5.0]])
    assert evaluate("cosine", output, np.zeros(2), reference) == {"cosine": pytest.approx((2**-0.5 + 1) / 2)}


def test_inference_of_the_metric():
    assert infer_metric(np.zeros((4, 10)), np.arange(4)) == "top1"
    assert infer_metric(np.zeros((4, 8, 8, 1)), np.ones((4, 8, 8, 1))) == "dice"
    assert infer_metric(np.zeros((4, 16, 32)), np.arange(4)) == "cosine"


def test_wrong_metric_for_the_output_is_a_clear_error():
    with pytest.raises(UsageError, match="needs a mask of the output's size"):
        evaluate("dice", np.zeros((4, 10)), np.arange(4), np.zeros((4, 10)))

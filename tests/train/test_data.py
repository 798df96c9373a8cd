"""--train data: what is accepted (and how labels are shaped for the loss), and each bad file as one
UsageError line that names the flag, the file and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.errors import UsageError
from qconvert.train.data import load_train
from tests.train.conftest import classifier, segmenter

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 4)).astype(np.float32)
IMAGES = RNG.standard_normal((6, 1, 4, 4)).astype(np.float32)
MASKS = (RNG.random((6, 4, 4)) > 0.5).astype(np.float32)


def saved(tmp_path, **arrays) -> str:
    path = tmp_path / "train.npz"
    np.savez(path, **arrays)
    return str(path)


def test_class_indices_for_class_scores(tmp_path):
    data = load_train(saved(tmp_path, x=X.astype(np.float64), labels=np.array([0, 1, 2, 0, 1, 2])), classifier())
    assert data.task == "top1" and data.count == 6
    assert data.feeds["x"].dtype == np.float32 and data.labels.dtype == np.int64


def test_masks_take_the_outputs_shape(tmp_path):
    data = load_train(saved(tmp_path, x=IMAGES, labels=MASKS), segmenter())
    assert data.task == "dice" and data.labels.shape == (6, 1, 4, 4) and data.labels.dtype == np.float32


def test_regression_targets_and_no_labels(tmp_path):
    targets = RNG.standard_normal((6, 3)).astype(np.float32)
    assert load_train(saved(tmp_path, x=X, labels=targets), classifier()).task == "cosine"
    data = load_train(saved(tmp_path, x=X), classifier())
    assert data.labels is None and data.task is None


@pytest.mark.parametrize("arrays, message", [
    (dict(image=X), "--train {path}: no array for input x; unknown array image; key arrays by input name (x) "
                    "plus optional 'labels'"),
    (dict(x=X, extra=X), "--train {path}: unknown array extra; key arrays by input name (x) plus optional "
                         "'labels'"),
    (dict(x=X[:, :3]), "--train {path}: input 'x' has shape (6, 3); the model takes [N, 4] (axis 1 differs)"),
    (dict(x=X[None]), "--train {path}: input 'x' has shape (1, 6, 4); the model takes 2-D [N, 4] (samples first)"),
    (dict(x=X.astype(np.int32)), "--train {path}: input 'x' is int32; the model takes float32"),
    (dict(x=np.where(np.arange(24).reshape(6, 4) % 10 == 3, np.inf, X)), "--train {path}: input 'x' has 3 NaN/Inf "
                                                                           "values"),
    (dict(x=X, labels=np.arange(5)), "--train {path}: 5 labels for 6 samples; give one label per sample"),
    (dict(x=X, labels=np.array([0, 1, 2, 3, 0, 1])),
     "--train {path}: label 3 is not one of the first output's 3 classes; give class indices in [0, 3)"),
    (dict(x=X, labels=np.zeros(6, np.float32)),
     "--train {path}: labels [6] do not fit the first output ['N', 3]; give class indices, one integer per sample"),
    (dict(x=X, labels=np.array([0.0, 1, np.inf, 0, 1, 2])), "--train {path}: labels have 1 NaN/Inf values"),
    (dict(x=X, labels=np.array(["a"] * 6)),
     "--train {path}: labels are <U1; give integer class indices or float targets"),
])
def test_bad_classifier_data(tmp_path, arrays, message):
    path = saved(tmp_path, **arrays)
    with pytest.raises(UsageError) as error:
        load_train(path, classifier())
    assert str(error.value) == message.format(path=path)
    assert error.value.exit_code == 2


def test_mask_labels_of_another_size(tmp_path):
    path = saved(tmp_path, x=IMAGES, labels=MASKS[:, :2])
    with pytest.raises(UsageError, match=r"labels \[6, 2, 4\] do not fit the first output \['N', 1, 4, 4\]; "
                                         r"give one target of the output's shape per sample"):
        load_train(path, segmenter())


@pytest.mark.parametrize("name", ["missing.npz", "data.npy"])
def test_not_an_npz(tmp_path, name):
    (tmp_path / "data.npy").write_bytes(b"")
    with pytest.raises(UsageError, match=r"expected an existing \.npz with the inputs keyed by input name"):
        load_train(str(tmp_path / name), classifier())

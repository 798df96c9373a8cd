"""Reference models: tiny builds produce usable artifacts, builds are
deterministic, and the default (shipped) configurations keep their size."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import build as build_mod
from models import convnet_torch, vgg_torch

# Minimum eval metric of each tiny variant (measured values are well above).
TINY_THRESHOLDS = {"unet": 0.6, "vgg": 0.8, "convnet": 0.8, "bert": 0.75}
TORCH_FILES = ["{}.pt", "{}.pt2", "{}_weights.pt", "{}_eval.npz"]


@pytest.fixture(scope="module")
def tiny_dir(tiny_models):
    """The session's tiny builds (tests/conftest.py), shared with the quantization and backend tests."""
    return tiny_models


@pytest.fixture(scope="module")
def manifest(tiny_dir):
    return json.loads((tiny_dir / "manifest.json").read_text())


def test_all_files_written(tiny_dir, manifest):
    expected = ["unet.h5", "unet_eval.npz", "manifest.json"]
    for name in ("vgg", "convnet", "bert"):
        expected += [pattern.format(name) for pattern in TORCH_FILES]
    for filename in expected:
        assert (tiny_dir / filename).is_file(), filename
    assert manifest["tiny"] is True
    assert sorted(manifest["models"]) == sorted(build_mod.MODELS)


@pytest.mark.parametrize("name", sorted(TINY_THRESHOLDS))
def test_tiny_metric_meets_threshold(manifest, name):
    entry = manifest["models"][name]
    assert entry["value"] >= TINY_THRESHOLDS[name], entry
    assert entry["params"] > 0 and entry["train_seconds"] > 0


def test_eval_npz_keys_match_input_names(tiny_dir):
    unet = np.load(tiny_dir / "unet_eval.npz")
    assert set(unet.files) == {"input", "labels"}
    assert unet["input"].dtype == np.float32 and unet["input"].shape[-1] == 3
    assert unet["labels"].shape == unet["input"].shape[:-1] + (1,)
    assert set(np.unique(unet["labels"])) <= {0.0, 1.0}
    for name in ("vgg", "convnet"):
        data = np.load(tiny_dir / f"{name}_eval.npz")
        assert set(data.files) == {"x", "labels"}
        assert data["x"].dtype == np.float32 and data["x"].shape[1:] == (3, 32, 32)
        assert data["labels"].dtype == np.int64
    bert = np.load(tiny_dir / "bert_eval.npz")
    assert set(bert.files) == {"input_ids", "labels"}
    assert bert["input_ids"].dtype == np.int64 and bert["input_ids"].shape[1] == 128


def test_train_npz_is_the_training_set_keyed_by_input_name(tiny_dir, manifest):
    from models.data import digits_split, shapes_with_masks, token_sequences

    x_train, y_train = digits_split()[:2]
    for name, entry in manifest["models"].items():
        assert f"{name}_train.npz" in entry["files"], name
        with np.load(tiny_dir / f"{name}_train.npz") as train, np.load(tiny_dir / f"{name}_eval.npz") as ev:
            key = entry["input_name"]
            assert set(train.files) == {key, "labels"}, name
            x, labels = train[key], train["labels"]
            assert len(labels) == len(x) and x.dtype == ev[key].dtype and x.shape[1:] == ev[key].shape[1:]
            # No training sample is an eval sample.
            seen = {row.tobytes() for row in ev[key]}
            assert not any(row.tobytes() in seen for row in x), name
        # What each module trains on (the tiny configs, at seed 0), all of it: every set is under TRAIN_BYTES.
        if name == "unet":
            expected = shapes_with_masks(256, size=64, seed=0)
        elif name == "bert":
            expected = token_sequences(2048, 128, 1000, seed=0)
        else:
            expected = (x_train, y_train)
        np.testing.assert_array_equal(x, expected[0])
        np.testing.assert_array_equal(labels, expected[1])
        assert labels.dtype == expected[1].dtype


def test_torch_artifacts_agree_and_batch_is_dynamic(tiny_dir):
    x = torch.from_numpy(np.load(tiny_dir / "vgg_eval.npz")["x"][:3])
    model = vgg_torch.build_tiny().eval()
    model.load_state_dict(torch.load(tiny_dir / "vgg_weights.pt"))
    exported = torch.export.load(tiny_dir / "vgg.pt2").module()
    scripted = torch.jit.load(tiny_dir / "vgg.pt")
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(exported(x), expected)  # batch 3, traced with 2
        torch.testing.assert_close(scripted(x), expected)
        assert exported(x[:1]).shape == (1, 10)


def test_same_seed_gives_identical_weights(tiny_dir):
    # The tiny ConvNet retrains in about a second.
    model = convnet_torch.build_and_train(tiny=True)[0]
    saved = torch.load(tiny_dir / "convnet_weights.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_vgg_default_build_is_the_reference_config():
    signature = inspect.signature(vgg_torch.build)
    assert all(p.default is not inspect.Parameter.empty for p in signature.parameters.values())
    model = vgg_torch.build()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs)
    # width_mult=0.5, 10 classes: changing the defaults breaks shipped weights.
    assert sum(p.numel() for p in model.parameters()) == 3_816_426
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_convnet_and_bert_build_without_arguments():
    assert convnet_torch.build()(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    from models import bert_torch

    hidden = bert_torch.build()(torch.zeros(1, 128, dtype=torch.int64))
    assert hidden.shape == (1, 128, 256)


REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(code):
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_unet_default_param_count_and_no_torch_import():
    # Subprocess: proves the Keras path never imports torch (tensorflow is slow
    # to import, and the torch models must not need it either).
    out = _run(
        "import sys; from models import unet_keras; m = unet_keras.build(); "
        "print(m.count_params(), m.input_shape, m.output_shape, m.input_names, 'torch' in sys.modules)"
    )
    count, rest = out.split(" ", 1)
    assert 400_000 <= int(count) <= 650_000
    assert rest.strip() == "(None, 128, 128, 3) (None, 128, 128, 1) ['input'] False"


def test_torch_and_data_modules_do_not_import_tensorflow():
    out = _run(
        "import sys; import models.build, models.data, models.vgg_torch, models.bert_torch; "
        "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)"
    )
    assert out.strip() == "False False"

"""Shared fixtures: tiny models of every source format, written once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_torch(tmp_path_factory) -> dict[str, Path]:
    """The same tiny CNN as factory file, state_dict, TorchScript .pt and ExportedProgram .pt2."""
    import torch

    from tests.fixtures.tiny_torch import build

    folder = tmp_path_factory.mktemp("tiny_torch")
    factory = folder / "tiny_torch.py"
    shutil.copy(FIXTURES / "tiny_torch.py", factory)
    model = build()
    example = torch.randn(2, 3, 16, 16)
    torch.save(model.state_dict(), folder / "weights.pt")
    torch.jit.save(torch.jit.trace(model, example), folder / "tiny.pt")
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}}), folder / "tiny.pt2")
    return {"factory": factory, "weights": folder / "weights.pt", "pt": folder / "tiny.pt",
            "pt2": folder / "tiny.pt2", "dir": folder}


@pytest.fixture(scope="session")
def tiny_keras(tmp_path_factory) -> dict[str, Path]:
    """A tiny segmentation net saved by tf.keras 2 (.h5) and by Keras 3 (.h5 and .keras)."""
    import keras
    import tf_keras

    folder = tmp_path_factory.mktemp("tiny_keras")

    def build(layers):
        inputs = layers.Input((16, 16, 3), name="image")
        x = layers.Conv2D(8, 3, padding="same")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        skip = x
        x = layers.MaxPooling2D()(x)
        x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = layers.UpSampling2D()(x)
        x = layers.Concatenate()([x, skip])
        return layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x), inputs

    tf_keras.utils.set_random_seed(0)
    outputs, inputs = build(tf_keras.layers)
    tf_keras.Model(inputs, outputs).save(folder / "k2.h5")
    keras.utils.set_random_seed(0)
    outputs, inputs = build(keras.layers)
    model = keras.Model(inputs, outputs)
    model.save(folder / "k3.h5")
    model.save(folder / "k3.keras")
    return {"h5": folder / "k2.h5", "k3_h5": folder / "k3.h5", "keras": folder / "k3.keras", "dir": folder}


@pytest.fixture(scope="session")
def tiny_onnx(tiny_torch, tmp_path_factory) -> Path:
    from qconvert.converters import load_source
    from qconvert.converters.input_spec import parse_input_shapes
    from qconvert.ir import save_ir

    source = load_source(str(tiny_torch["pt"]), input_specs=parse_input_shapes(["1,3,16,16"]))
    return save_ir(source.ir, tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, worker_id) -> Path:
    """Every reference model's tiny variant (models.build --tiny), built once per session for the model,
    quantization and backend tests, with smaller calibration and evaluation sets for the analyses that
    run dozens of model variants. Calibration comes from the training distributions, never from the
    evaluation sets."""
    return built_once(tmp_path_factory, worker_id, "tiny_models", _build_tiny_models)


def _build_tiny_models(out: Path) -> None:
    import numpy as np

    from models import build
    from models.data import digits_split, shapes_with_masks

    build.build(out, tiny=True)
    np.savez(out / "vgg_calib.npz", x=digits_split()[0][:128])
    np.savez(out / "unet_calib.npz", input=shapes_with_masks(64, size=64, seed=777)[0])
    with np.load(out / "vgg_eval.npz") as data:
        np.savez(out / "vgg_eval_small.npz", x=data["x"][:128], labels=data["labels"][:128])


def built_once(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """`build(folder)` run once per test session: under pytest-xdist (`make test` runs two workers) the
    first worker to get here builds into the session's shared temporary folder while the others wait on
    its lock, then all read the same files; without xdist, into a folder of this session's own."""
    if worker_id == "master":
        out = tmp_path_factory.mktemp(name)
        build(out)
        return out
    from filelock import FileLock

    out = tmp_path_factory.getbasetemp().parent / name  # the session's folder, above each worker's own
    with FileLock(f"{out}.lock"):
        if not (out / ".built").exists():
            out.mkdir(exist_ok=True)
            build(out)
            (out / ".built").touch()
    return out

"""Tiny reference models (models.build --tiny), built once per session for the accuracy tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    from models import build
    from models.data import digits_split, shapes_with_masks

    out = tmp_path_factory.mktemp("tiny_models")
    build.build(out, tiny=True, only=("unet", "vgg", "bert"))
    # Calibration from the training distributions, never from the evaluation sets.
    np.savez(out / "vgg_calib.npz", x=digits_split()[0][:128])
    np.savez(out / "unet_calib.npz", input=shapes_with_masks(64, size=64, seed=777)[0])
    # A smaller evaluation set for the analyses that run dozens of model variants.
    with np.load(out / "vgg_eval.npz") as data:
        np.savez(out / "vgg_eval_small.npz", x=data["x"][:128], labels=data["labels"][:128])
    return out

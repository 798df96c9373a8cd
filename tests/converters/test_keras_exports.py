"""Keras 3 layers whose TensorFlow form tf2onnx does not take as it is (ConvNeXt, EfficientNet)."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.converters import load_source
from qconvert.converters.parity import run_ir
from qconvert.report.metrics import sqnr_db


def _save(tmp_path, build):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.layers.Input((12, 12, 4), name="image")
    model = keras.Model(inputs, build(keras.layers, inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    return model, path


def _check(model, path):
    source = load_source(str(path))  # the adapter's own check (50 dB) runs here too
    x = np.random.default_rng(3).standard_normal((3, 12, 12, 4)).astype(np.float32)
    (got,) = run_ir(source.ir, {"image": x})
    assert sqnr_db(np.asarray(model(x)), got) > 100
    return [node.op_type for node in source.ir.graph]


@pytest.mark.parametrize("groups", [4, 2])
def test_grouped_conv_and_exact_gelu(tmp_path, groups):
    """ConvNeXt's block: a grouped conv (Keras runs it through a nested XLA function) and the exact GELU
    (TensorFlow writes it with Erfc)."""
    def build(layers, x):
        return layers.Dense(4, activation="gelu")(layers.Conv2D(4, 3, padding="same", groups=groups)(x))

    model, path = _save(tmp_path, build)
    ops = _check(model, path)
    assert "StatefulPartitionedCall" not in ops and "Conv" in ops and "Erfc" not in ops
    assert "Erf" in ops or "Gelu" in ops


def test_normalization_layer_constants_are_initializers(tmp_path):
    """Keras 3 keeps a Normalization's mean and variance as captured tensors, which tf2onnx made graph inputs."""
    mean, variance = [0.5, -1.0, 2.0, 0.0], [4.0, 0.25, 1.0, 9.0]
    model, path = _save(tmp_path, lambda layers, x: layers.Conv2D(3, 1)(
        layers.Normalization(mean=mean, variance=variance)(x)))
    source = load_source(str(path))
    assert [v.name for v in source.ir.graph.inputs] == ["image"]
    _check(model, path)

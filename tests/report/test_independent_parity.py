"""A row's SQNR recomputed outside qconvert: the source in its framework and the artifact in its runtime,
each opened the way a user would (default options), on the samples the report used."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.ir.inputs import random_feeds
from qconvert.converters.input_spec import InputSpec

TARGETS = ["onnx-fp32", "tflite-fp32", "torch-fp32"]


@pytest.fixture(scope="module")
def resnet_v2_stem(tmp_path_factory):
    """Keras ResNetV2's stem: a conv without activation, then ZeroPadding2D -> MaxPool, so border
    windows are often all negative (what onnxruntime's PadFusion got wrong)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.layers.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.MaxPooling2D(3, 2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    path = tmp_path_factory.mktemp("stem") / "stem.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def _sqnr(reference: np.ndarray, actual: np.ndarray) -> float:
    noise = np.sum((reference.astype(np.float64) - actual) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise))


def _run_artifact(target: str, path: str, x: np.ndarray) -> np.ndarray:
    if target == "onnx-fp32":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    if target == "tflite-fp32":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import torch

    return torch.jit.load(path)(torch.from_numpy(x)).numpy()


def test_reported_sqnr_matches_an_independent_measurement(resnet_v2_stem, tmp_path):
    import keras

    from qconvert.api import convert

    result = convert(str(resnet_v2_stem), to=TARGETS, out_dir=tmp_path, parity_samples=16, runs=2, warmup=1)
    x = random_feeds([InputSpec("image", (None, 16, 16, 3))], 16, 0)["image"]  # the report's samples
    reference = np.asarray(keras.saving.load_model(resnet_v2_stem)(x))
    for target in TARGETS:
        row = result.row(target)
        assert row.status == "ok", (target, row.error)
        independent = _sqnr(reference, _run_artifact(target, row.path, x))
        assert independent >= 100, (target, independent)
        assert row.sqnr_db == pytest.approx(independent, abs=1.0) or min(row.sqnr_db, independent) > 140, target

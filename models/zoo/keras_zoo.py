"""keras.applications architectures (Keras 3, weights=None) saved as .h5 and .keras, plus a tf_keras
(Keras 2) MobileNetV2 .h5, the file tfmot users have."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.zoo.registry import ZooModel
from models.zoo.torch_common import perturbed, spec

BUILDER = "models.zoo.keras_zoo:build"
INPUT_NAME = "image"
ARCHS = {  # name: input size (Xception needs at least 71)
    "MobileNet": 64, "MobileNetV2": 64, "MobileNetV3Small": 64, "EfficientNetB0": 64, "EfficientNetV2B0": 64,
    "ResNet50V2": 64, "DenseNet121": 64, "NASNetMobile": 64, "ConvNeXtTiny": 64, "Xception": 96,
}
# Architectures whose first layers rescale 0..255 pixels themselves (Rescaling/Normalization, Keras's
# include_preprocessing). Fed standard-normal numbers, their input would be a constant plus noise a
# thousandth its size, which fp16 rounding alone destroys; they get pixels. `build` checks this set
# against the model's layers.
PIXEL_INPUT = {"MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny"}
PREPROCESSING_LAYERS = ("Rescaling", "Normalization")


def _entry(arch, fmt, size, keras2=False) -> ZooModel:
    name = f"{arch}_tfkeras.{fmt}" if keras2 else f"{arch}.{fmt}"
    return ZooModel(name=name, family="keras", arch=arch, format=fmt,
                    inputs=(spec(INPUT_NAME, (2, size, size, 3),
                                 value_range=(0.0, 255.0) if arch in PIXEL_INPUT else None),), builder=BUILDER,
                    options={"keras2": keras2})


ENTRIES = [_entry(arch, fmt, size) for arch, size in ARCHS.items() for fmt in ("h5", "keras")]
ENTRIES.append(_entry("MobileNetV2", "h5", 64, keras2=True))


def _keras(model: ZooModel):
    if model.options.get("keras2"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def make_model(model: ZooModel):
    keras = _keras(model)
    keras.utils.set_random_seed(model.seed)
    size = model.inputs[0].shape[1:]
    image = keras.Input(shape=size, name=INPUT_NAME)
    factory = getattr(keras.applications, model.arch)
    return factory(weights=None, input_tensor=image, classes=10)


def randomize_norms(net, keras, x: np.ndarray, seed: int) -> None:
    """As models/zoo/torch_common.py does for torch: random gamma/beta, then momentum 0 for one
    training-mode call sets the moving statistics to that batch's, then perturbed statistics with a
    compensated affine. ConvNeXt's LayerScale gammas (1e-6 at init, which makes every block an
    identity) become 0.1..0.5."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if type(layer).__name__ == "LayerScale":
            gamma = layer.weights[0]
            gamma.assign(rng.uniform(0.1, 0.5, gamma.shape).astype("float32"))
    norms = [layer for layer in net.layers
             if isinstance(layer, keras.layers.BatchNormalization) and layer.gamma is not None and layer.beta is not None]
    for bn in norms:
        n = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        bn.beta.assign(rng.uniform(-0.2, 0.2, n).astype("float32"))
        bn.momentum = 0.0
    net(x, training=True)
    for bn in norms:
        bn.momentum = 0.99
        values = perturbed(*(np.asarray(v.numpy(), "float64") for v in (bn.moving_mean, bn.moving_variance, bn.gamma,
                                                                       bn.beta)), bn.epsilon, rng)
        for variable, value in zip((bn.moving_mean, bn.moving_variance, bn.gamma, bn.beta), values):
            variable.assign(value)


def preprocesses_pixels(net) -> bool:
    """Whether a layer right after the input rescales it (Keras may nest it in no model, so the layer
    list is read directly)."""
    first = [layer for layer in net.layers if type(layer).__name__ != "InputLayer"][:2]
    return any(type(layer).__name__ in PREPROCESSING_LAYERS for layer in first)


def build(model: ZooModel, out: Path) -> None:
    import warnings

    keras = _keras(model)
    net = make_model(model)
    if preprocesses_pixels(net) != (model.arch in PIXEL_INPUT):
        raise ValueError(f"{model.name}: PIXEL_INPUT disagrees with the model's first layers")
    (calibration,) = model.sample_inputs(8, seed=2)
    randomize_norms(net, keras, calibration, seed=model.seed + 1)
    (example,) = model.sample_inputs(model.inputs[0].shape[0], seed=3)
    y = np.asarray(net(example, training=False))
    if not np.isfinite(y).all():
        raise ValueError(f"{model.name}: output is not finite")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        if model.format == "h5":
            net.save(out / model.file, include_optimizer=False)
        else:
            net.save(out / model.file)

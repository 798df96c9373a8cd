"""Reference UNet in tf_keras (Keras 2), trained on synthetic shape masks.

Keras 2 rather than Keras 3 because the legacy `.h5` format and tf2onnx are
what the Keras path of qconvert consumes.
"""

import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.data import shapes_with_masks

INPUT_NAME = "input"
TRAIN_SEED = 0
EVAL_SEED = 1234  # disjoint from the training seed


def _conv_block(x, filters, name):
    # Bias is redundant in front of BatchNormalization.
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        # momentum 0.9 (not 0.99): training is only a few hundred steps, and
        # the moving statistics must converge within it for inference.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build(base_filters=16, depth=3, input_size=128):
    """UNet: `depth` MaxPool downsamplings, Conv2DTranspose upsamplings and
    Concatenate skips; [N, s, s, 3] in, [N, s, s, 1] sigmoid mask out.
    About 0.49M parameters at the defaults."""
    inputs = keras.Input((input_size, input_size, 3), name=INPUT_NAME)
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = _conv_block(x, base_filters * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_tconv")(x)
        x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = _conv_block(x, filters, f"up{level}")
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="unet")


def build_tiny():
    """Small fast variant used by the tests (64x64 input, ~8K parameters)."""
    return build(base_filters=4, depth=2, input_size=64)


def dice(pred, target, threshold=0.5):
    """Dice of the thresholded prediction against the target, over the whole set."""
    pred = pred > threshold
    target = target > 0.5
    return float(2 * np.logical_and(pred, target).sum() / (pred.sum() + target.sum() + 1e-7))


def _bce_dice_loss(y_true, y_pred):
    # Dice term counters the ~85% background imbalance; BCE keeps early
    # gradients well-behaved.
    bce = keras.losses.binary_crossentropy(y_true, y_pred)
    inter = tf.reduce_sum(y_true * y_pred)
    soft_dice = (2 * inter + 1) / (tf.reduce_sum(y_true) + tf.reduce_sum(y_pred) + 1)
    return tf.reduce_mean(bce) + (1 - soft_dice)


FULL_TRAIN = dict(n_train=512, epochs=3, lr=2e-3)
TINY_TRAIN = dict(n_train=256, epochs=4, lr=1e-2)
N_EVAL = 64


def train(model, n_train, epochs, lr, batch_size=16, seed=TRAIN_SEED):
    """Deterministic training on shapes_with_masks; returns seconds spent."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x, y = shapes_with_masks(n_train, size=model.input_shape[1], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=_bce_dice_loss)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - start


def build_and_train(tiny=False, seed=TRAIN_SEED):
    """Returns (model, eval images, eval masks, eval Dice, train seconds)."""
    keras.utils.set_random_seed(seed)  # weight init
    model = build_tiny() if tiny else build()
    seconds = train(model, seed=seed, **(TINY_TRAIN if tiny else FULL_TRAIN))
    x_eval, y_eval = shapes_with_masks(N_EVAL, size=model.input_shape[1], seed=EVAL_SEED)
    score = dice(model.predict(x_eval, batch_size=16, verbose=0), y_eval)
    return model, x_eval, y_eval, score, seconds

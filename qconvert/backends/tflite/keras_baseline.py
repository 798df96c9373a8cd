"""The reference point for the TFLite targets: TFLiteConverter.from_keras_model on the Keras file itself,
with the same converter settings. The bench puts it beside tflite-fp32/fp16 made from the IR.

    write_keras_baseline("unet.h5", "unet.keras-fp16.tflite", "fp16")

The file opens with the LiteRT runner without facts (NHWC input and output, named as in Keras).
"""

from __future__ import annotations

from pathlib import Path

from qconvert.backends.tflite.emit import configure


def write_keras_baseline(keras_path: str, out_path: str | Path, mode: str = "fp32") -> Path:
    from qconvert.quiet_imports import import_tensorflow
    from qconvert.converters.keras_source import load_keras_model

    tf = import_tensorflow()
    model = load_keras_model(str(keras_path), {"trust_code": False})
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure(converter, mode)
    Path(out_path).write_bytes(converter.convert())
    return Path(out_path)

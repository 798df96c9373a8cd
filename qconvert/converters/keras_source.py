"""Keras sources: `.h5` (legacy HDF5 from tf.keras 2.x or Keras 3) and `.keras`, through tf2onnx.

HDF5 files written by tf.keras 2.x load in tf-keras (Keras 2), which keeps their exact ops; files written
by Keras 3 load in Keras 3. Both are wrapped in a tf.function with a dynamic batch and handed to tf2onnx.
Lambda layers hold marshalled Python bytecode, so they load only with --trust-code.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qconvert.converters.input_spec import InputSpec, match_specs_to_inputs
from qconvert.converters.keras_batchnorm_folds import record_keras_folds
from qconvert.converters.probe import choose_example_shapes
from qconvert.converters.parity import check_ir_matches_source
from qconvert.converters.source import Source
from qconvert.errors import ExportError, SourceLoadError, UsageError
from qconvert.ir.metadata import set_meta
from qconvert.quiet_imports import import_tensorflow

OPSET = 17


def _h5_config(path: str) -> tuple[str, dict]:
    """(keras_version, model_config) read straight from the HDF5 attributes, without loading."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", b"")
            config = f.attrs.get("model_config")
    except OSError as error:
        raise SourceLoadError(
            f"cannot read {path} as HDF5 ({error}); the file is truncated or not a Keras model, save it again"
        ) from error
    if config is None:
        raise SourceLoadError(f"{path} holds no model_config: it has weights only; save the whole model")
    decode = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    return decode(version), json.loads(decode(config))


def _v3_config(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise SourceLoadError(f"cannot read {path} as a .keras archive ({error}); save it again") from error


def _layer_classes(config) -> set[str]:
    found = set()
    if isinstance(config, dict):
        if "class_name" in config:
            found.add(config["class_name"])
        for value in config.values():
            found |= _layer_classes(value)
    elif isinstance(config, list):
        for value in config:
            found |= _layer_classes(value)
    return found


def load_keras_model(path: str, options: dict):
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    suffix = Path(path).suffix.lower()
    if suffix == ".h5":
        version, config = _h5_config(path)
    else:
        version, config = "3", _v3_config(path)
    trust = options.get("trust_code", False)
    if "Lambda" in _layer_classes(config) and not trust:
        raise UsageError(f"{path} has Lambda layers, whose code runs when loaded; pass --trust-code if you trust it")
    import_tensorflow()
    try:
        if suffix == ".h5" and not version.startswith("3"):
            import tf_keras

            return tf_keras.models.load_model(path, compile=False, safe_mode=not trust)
        import keras

        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SourceLoadError(
            f"cannot load Keras model {path}: {message[:300]}; custom layers need their code registered"
        ) from error


def _input_specs(model) -> list[InputSpec]:
    specs = []
    for tensor in model.inputs:
        name = getattr(tensor, "name", "input").split(":")[0]
        dtype = getattr(tensor.dtype, "name", str(tensor.dtype))
        specs.append(InputSpec(name, (None,) + tuple(tensor.shape[1:]), dtype))
    return specs


def _pinned(specs: list[InputSpec], given: list[InputSpec], path: str) -> list[InputSpec]:
    """The model's input specs with --input-shape's sizes in its dynamic dims after the batch."""
    if not given:
        return specs
    matched = match_specs_to_inputs(given, [s.name for s in specs], path)
    pinned = []
    for spec, user in zip(specs, matched):
        if len(user.shape) != len(spec.shape):
            raise UsageError(f"--input-shape for {spec.name!r} has {len(user.shape)} dims; {path} takes "
                             f"{len(spec.shape)} ({list(spec.shape)}, N the batch)")
        dims = [None]
        for axis, (dim, size) in enumerate(zip(spec.shape[1:], user.shape[1:]), start=1):
            if dim is not None and dim != size:
                raise UsageError(f"input {spec.name!r} of {path} has dim {axis} fixed at {dim}; "
                                 f"--input-shape gives {size}")
            dims.append(size)
        pinned.append(InputSpec(spec.name, tuple(dims), spec.dtype))
    return pinned


def _output_names(model) -> list[str]:
    names = getattr(model, "output_names", None) or [
        getattr(t, "name", f"output_{i}").split(":")[0].split("/")[0] for i, t in enumerate(model.outputs)
    ]
    return list(names)


@contextlib.contextmanager
def _grouped_convs_without_xla():
    """Keras 3 runs a grouped or channels-first 3-D convolution as a nested XLA-compiled function (TF's
    CPU kernels lack them), which tf2onnx cannot inline (Keras ConvNeXt's depthwise 7x7 came out as an
    unknown StatefulPartitionedCall op). For tracing the export, the plain TF convolution is enough:
    tf2onnx writes it as one ONNX Conv with `group`. The reference runs keep Keras's own path."""
    try:
        from keras.src.backend.tensorflow import nn as keras_tf_nn
    except ImportError:  # tf-keras (Keras 2) models never take that path
        yield
        return
    tf = import_tensorflow()
    original = keras_tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        fmt = keras_tf_nn._convert_data_format(data_format, len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate)

    keras_tf_nn.conv = conv
    try:
        yield
    finally:
        keras_tf_nn.conv = original


def _bind_captured_constants(proto, concrete, input_names: set[str]) -> None:
    """Constants the traced function captured (Keras 3 keeps a Normalization layer's mean and variance as
    tensors, not variables) are graph inputs in tf2onnx's file; they become initializers holding the
    captured values. Fed random numbers instead, EfficientNet and ConvNeXt diverged from their stems on."""
    import onnx.numpy_helper

    captured = {inner.name: outer for outer, inner in zip(concrete.captured_inputs, concrete.graph.internal_captures)
                if outer.dtype.name != "resource"}
    for value in list(proto.graph.input):
        if value.name in input_names or value.name not in captured:
            continue
        array = np.asarray(captured[value.name].numpy())
        proto.graph.initializer.append(onnx.numpy_helper.from_array(array, value.name))
        proto.graph.input.remove(value)


def _serving_function(model, specs: list[InputSpec]):
    tf = import_tensorflow()
    signature = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]

    @tf.function(input_signature=signature)
    def serve(*args):
        outputs = model(list(args) if len(args) > 1 else args[0], training=False)
        return outputs if isinstance(outputs, (list, tuple)) else [outputs]

    return serve, signature


def load(path: str, *, input_specs: list[InputSpec], weights: str | None, trust_code: bool) -> Source:
    if weights:
        raise UsageError("--weights applies to file.py:factory sources; a Keras file carries its weights")
    options = {"trust_code": trust_code}
    keras_model = load_keras_model(path, options)
    specs = _pinned(_input_specs(keras_model), input_specs, path)
    if input_specs:  # the reference run in the child process traces the same signature
        options["input_shapes"] = [list(s.shape) for s in specs]
    serve, signature = _serving_function(keras_model, specs)
    import tf2onnx

    from qconvert.converters.tf2onnx_ops import register

    register()

    try:
        with _grouped_convs_without_xla():
            exported, _ = _serving_function(keras_model, specs)
            proto, _ = tf2onnx.convert.from_function(exported, input_signature=signature, opset=OPSET)
        _bind_captured_constants(proto, exported.get_concrete_function(), {s.name for s in specs})
    except Exception as error:
        raise ExportError(f"tf2onnx could not convert {path}: {str(error).splitlines()[0][:300]}") from error
    model = ir.serde.deserialize_model(proto)
    record_keras_folds(model, keras_model)
    for value, name in zip(model.graph.outputs, _output_names(keras_model)):
        value.name = name
    set_meta(model, "source_framework", "keras")
    fmt = "keras-h5" if path.lower().endswith(".h5") else "keras-v3"
    set_meta(model, "source_format", fmt)
    set_meta(model, "input_layouts", {s.name: ("NHWC" if len(s.shape) == 4 else "-") for s in specs})
    choose_example_shapes(model, path)
    check_ir_matches_source(model, _predictor(serve, specs), path)
    return Source(path, "keras", fmt, model, os.path.getsize(path), options)


def _predictor(serve, specs: list[InputSpec]):
    def predict(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in serve(*[feeds[s.name] for s in specs])]

    return predict


class KerasReference:
    """The source Keras model, run as a compiled tf.function in a child process."""

    def __init__(self, path: str, options: dict, device: str, threads: int):
        tf = import_tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if device == "cuda":
            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                from qconvert.backends.session import DeviceUnavailable

                raise DeviceUnavailable("tensorflow sees no GPU")
            self.device = f"cuda ({gpus[0].name})"
        else:
            tf.config.set_visible_devices([], "GPU")
            self.device = "cpu"
        model = load_keras_model(path, options)
        specs = _input_specs(model)
        if options.get("input_shapes"):
            specs = [InputSpec(s.name, tuple(shape), s.dtype) for s, shape in zip(specs, options["input_shapes"])]
        serve, _ = _serving_function(model, specs)
        self.run = _predictor(serve, specs)


def open_reference(path: str, options: dict, device: str, threads: int) -> KerasReference:
    return KerasReference(path, options, device, threads)

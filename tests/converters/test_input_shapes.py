"""`--input-shape` pins dynamic dims of every source; without it, a probe finds sizes the model takes."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.parity import run_ir
from qconvert.errors import UsageError
from qconvert.ir import get_meta
from qconvert.ir.inputs import random_feeds, specs_from_ir


def _onnx_file(tmp_path, side: int, name: str = "m.onnx"):
    """Symbolic batch, height and width; the Add only fits a side x side image (as a detector's anchor grid
    fits only sizes its strides divide)."""
    grid = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    values = ",".join(f"{v:.6f}" for v in grid.ravel())
    model = onnx.parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,H,W] images) => (float[N,3,H,W] y) {{
  grid = Constant<value=float[1,3,{side},{side}] {{{values}}}>()
  y = Add(images, grid)
}}""")
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _dims(source):
    return [d if isinstance(d, int) else None for d in source.ir.graph.inputs[0].shape]


def test_probe_finds_a_size_the_model_runs_at(tmp_path):
    source = load_source(str(_onnx_file(tmp_path, 32)))
    assert _dims(source) == [None, 3, None, None]  # the file stays as it is
    assert get_meta(source.ir, "example_shapes")["images"][2:] == [32, 32]
    feeds = random_feeds(specs_from_ir(source.ir), 3, 0)
    assert feeds["images"].shape == (3, 3, 32, 32)
    run_ir(source.ir, feeds)


def test_no_size_runs_names_the_dims_to_pin(tmp_path):
    with pytest.raises(UsageError, match=r"pin them with --input-shape images=1,3,H,W"):
        load_source(str(_onnx_file(tmp_path, 33)))


def test_input_shape_pins_height_and_width_and_keeps_the_batch_dynamic(tmp_path):
    source = load_source(str(_onnx_file(tmp_path, 33)), input_specs=parse_input_shapes(["1,3,33,33"]))
    assert _dims(source) == [None, 3, 33, 33]
    run_ir(source.ir, random_feeds(specs_from_ir(source.ir), 4, 0))


def test_input_shape_must_agree_with_a_fixed_dim(tmp_path):
    with pytest.raises(UsageError, match=r"dim 1 fixed at 3; --input-shape gives 4"):
        load_source(str(_onnx_file(tmp_path, 32)), input_specs=parse_input_shapes(["1,4,32,32"]))


@pytest.fixture(scope="module")
def keras_any_size(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.layers.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("any_size") / "any.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_keras_dynamic_image_size_is_probed(keras_any_size):
    source = load_source(str(keras_any_size))
    assert _dims(source) == [None, None, None, 3]
    assert get_meta(source.ir, "example_shapes")["image"][1:3] == [64, 64]


def test_keras_input_shape_pins_the_image_size(keras_any_size):
    source = load_source(str(keras_any_size), input_specs=parse_input_shapes(["1,40,48,3"]))
    assert _dims(source) == [None, 40, 48, 3]

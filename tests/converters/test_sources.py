"""One parity test per source format: the adapter's IR computes what the source framework computes."""

import numpy as np
import pytest

from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.parity import run_ir
from qconvert.ir import get_meta, input_layouts
from qconvert.report.metrics import sqnr_db


def _torch_reference(feeds):
    import torch

    from tests.fixtures.tiny_torch import build

    with torch.no_grad():
        return build()(torch.from_numpy(feeds["x"])).numpy()


def _assert_matches_torch(source, batch=3):
    # Batch 3 differs from the export example (2): the batch dimension must have stayed dynamic.
    x = np.random.default_rng(1).standard_normal((batch, 3, 16, 16)).astype(np.float32)
    (got,) = run_ir(source.ir, {"x": x})
    assert got.shape == (batch, 10)
    assert sqnr_db(_torch_reference({"x": x}), got) > 60


def test_torchscript(tiny_torch):
    source = load_source(str(tiny_torch["pt"]), input_specs=parse_input_shapes(["1,3,16,16"]))
    assert (source.framework, source.format) == ("torch", "torchscript")
    assert [v.name for v in source.ir.graph.inputs] == ["x"]
    _assert_matches_torch(source)


def test_exported_program_records_its_shapes(tiny_torch):
    source = load_source(str(tiny_torch["pt2"]))
    assert source.format == "exported-program"
    _assert_matches_torch(source)


def test_python_factory_with_weights(tiny_torch):
    spec = f"{tiny_torch['factory']}:build"
    source = load_source(spec, input_specs=parse_input_shapes(["1,3,16,16"]),
                         weights=str(tiny_torch["weights"]), trust_code=True)
    assert source.format == "python-factory"
    assert input_layouts(source.ir) == {"x": "NCHW"}
    _assert_matches_torch(source)


@pytest.mark.parametrize("key,fmt", [("h5", "keras-h5"), ("k3_h5", "keras-h5"), ("keras", "keras-v3")])
def test_keras_formats(tiny_keras, key, fmt):
    import keras

    source = load_source(str(tiny_keras[key]))
    assert source.format == fmt
    assert get_meta(source.ir, "source_framework") == "keras"
    assert input_layouts(source.ir) == {"image": "NHWC"}
    assert [v.name for v in source.ir.graph.outputs] == ["mask"]
    x = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    (got,) = run_ir(source.ir, {"image": x})
    want = np.asarray(keras.models.load_model(tiny_keras[key], compile=False)(x, training=False))
    assert sqnr_db(want, got) > 60


def test_onnx_passes_through(tiny_onnx):
    source = load_source(str(tiny_onnx))
    assert source.framework == "onnx"
    assert get_meta(source.ir, "source_framework") == "torch"  # metadata survives the file round trip
    x = np.ones((2, 3, 16, 16), np.float32)
    assert run_ir(source.ir, {"x": x})[0].shape == (2, 10)

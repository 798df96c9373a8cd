"""Float IRs for the training tests: hand-written ones (onnx.parser text), the tiny torch fixture, and the
tiny reference models (tests/conftest.py tiny_models), each as qconvert.passes.cleanup leaves it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.passes.helpers import parse

# [N, 4] -> [N, 3] class scores.
CLASSIFIER = """<ir_version: 8, opset_import: ["" : 17]>
classifier (float[N, 4] x) => (float[N, 3] scores)
<float[3, 4] w = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.2, -0.1}, float[3] b = {0.1, 0.0, -0.1}>
{ scores = Gemm <transB: int = 1> (x, w, b) }"""

# [N, 1, 4, 4] -> a [N, 1, 4, 4] mask of probabilities (Sigmoid) or logits.
SEGMENTER = """<ir_version: 8, opset_import: ["" : 17]>
segmenter (float[N, 1, 4, 4] x) => (float[N, 1, 4, 4] mask)
<float[1, 1, 1, 1] w = {2.0}, float[1] b = {-0.5}>
{ logits = Conv (x, w, b)
  mask = %s (logits) }"""


def classifier():
    return parse(CLASSIFIER)


def segmenter(activation: str = "Sigmoid"):
    return parse(SEGMENTER % activation)


def float_ir(path: str, input_shapes: list[str] | None = None, trust_code: bool = False):
    from qconvert.converters import load_source
    from qconvert.converters.input_spec import parse_input_shapes
    from qconvert.passes import cleanup

    specs = parse_input_shapes(input_shapes) if input_shapes else None
    return cleanup(load_source(path, input_specs=specs, trust_code=trust_code).ir)


@pytest.fixture(scope="session")
def tiny_net(tiny_torch):
    """The tiny torch CNN (conv, folded BatchNorm, conv, mean, Gemm) on [N, 3, 16, 16]."""
    return float_ir(f"{tiny_torch['factory']}:build", ["1,3,16,16"], trust_code=True)


@pytest.fixture(scope="session")
def tiny_vgg(tiny_models):
    return float_ir(str(tiny_models / "vgg.pt2"))


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_eval, y_eval) of the digits at 32x32, as the reference classifiers see them."""
    from models.data import digits_split

    return digits_split()


def digits_at(x: np.ndarray, size: int) -> np.ndarray:
    """32x32 digits average-pooled to `size` (the tiny torch CNN takes 16x16)."""
    factor = x.shape[-1] // size
    return x.reshape(*x.shape[:2], size, factor, size, factor).mean(axis=(3, 5)).astype(np.float32)

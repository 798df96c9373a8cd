"""The IR as a trainable torch program: Parameters by initializer name, gradients, the same function as
onnxruntime computes, and the write-back round trip (an untrained IR comes back bit-identical)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.quant.evaluate import run_first_output
from qconvert.report.metrics import sqnr_db
from qconvert.train.program import trainable_program
from qconvert.train.writeback import write_back
from tests.passes.helpers import parse
from tests.train.conftest import classifier, float_ir

REFERENCE_MODELS = ["vgg.pt2", "resnet.pt2", "mobilenet.pt2", "bert.pt2", "unet.h5"]


def float_initializers(model) -> dict[str, np.ndarray]:
    arrays = {name: value.const_value.numpy() for name, value in model.graph.initializers.items()}
    return {name: array for name, array in arrays.items() if array.dtype.kind == "f"}


def assert_bit_identical(model, other) -> None:
    assert sorted(model.graph.initializers) == sorted(other.graph.initializers)
    for name, value in model.graph.initializers.items():
        a, b = value.const_value.numpy(), other.graph.initializers[name].const_value.numpy()
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        assert a.tobytes() == b.tobytes(), name


def check_program(model, device: str = "cpu") -> None:
    """Every float initializer a Parameter, gradients reach every trainable one, the output equals ORT's,
    and the write-back of the untouched program gives the IR back bit for bit."""
    program = trainable_program(model)
    assert sorted(program.parameters.values()) == sorted(float_initializers(model))
    program.module.to(device)
    feeds = random_feeds(specs_from_ir(model), 3, 0)
    output = program({k: torch.from_numpy(v).to(device) for k, v in feeds.items()})[0]
    assert program.module.training and output.requires_grad
    output.float().square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in program.trainable())
    assert sqnr_db(run_first_output(model, feeds), output.detach().cpu().numpy()) >= 60
    assert_bit_identical(model, write_back(model, program))


def test_tiny_net_round_trip(tiny_net):
    check_program(tiny_net)
    assert len(trainable_program(tiny_net).trainable()) == 6  # two convs (BatchNorm folded) and the Gemm


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_reference_model_round_trip(tiny_models, name):
    check_program(float_ir(str(tiny_models / name)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_program_trains_on_cuda(tiny_net):
    check_program(tiny_net, "cuda")


def test_gemm_weight_is_used_in_the_graph_and_written_back():
    """Gemm's transB weight is the initializer itself (transposed in the graph), so a change to the
    Parameter is the same change to the initializer."""
    model = classifier()
    program = trainable_program(model)
    weight = program.module.get_parameter(next(a for a, n in program.parameters.items() if n == "w"))
    assert tuple(weight.shape) == (3, 4)
    with torch.no_grad():
        weight.mul_(2.0)
    trained = write_back(model, program)
    np.testing.assert_array_equal(trained.graph.initializers["w"].const_value.numpy(),
                                  model.graph.initializers["w"].const_value.numpy() * 2)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = program({"x": torch.from_numpy(x)})[0].detach().numpy()
    assert sqnr_db(expected, run_first_output(trained, {"x": x})) >= 60


def test_formula_constants_and_statistics_get_no_gradient():
    """A Pow's exponent, an epsilon and BatchNorm's running statistics stay fixed; weights train, a
    one-channel bias included."""
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 2, 3, 3] x) => (float[N, 1, 3, 3] y)
    <float[2] gamma = {1.0, 2.0}, float[2] beta = {0.0, 0.5}, float[2] mean = {0.1, 0.2}, float[2] var = {1.0, 4.0},
     float two = {2.0}, float eps = {0.001}, float[1, 2, 1, 1] w = {0.5, -0.5}, float[1] b = {0.25}>
    { n = BatchNormalization (x, gamma, beta, mean, var)
      s = Pow (n, two)
      e = Add (s, eps)
      y = Conv (e, w, b) }""")
    program = trainable_program(model)
    trains = {name: program.module.get_parameter(attr).requires_grad for attr, name in program.parameters.items()}
    assert trains == {"gamma": True, "beta": True, "mean": False, "var": False, "two": False, "eps": False,
                      "w": True, "b": True}

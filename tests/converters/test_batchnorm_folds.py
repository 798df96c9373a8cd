"""The BatchNorm folds the exporters make are recorded as fold factors (qconvert/ir/fold_factors.py): torch.onnx's
for .pt2 files, modules from a Python factory and TorchScript files, TensorFlow's for Keras files, so that
pruning ranks the weights as trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.ir import fold_factors
from qconvert.passes.pipelines import cleanup
from qconvert.passes.prune_magnitude import Magnitudes, prune_global

FACTORY = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.ConvTranspose2d(4, 5, 2, 2),
                          nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 24 * 24, 6))
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.weight.uniform_(0.5, 2.0)
            bn.running_var.uniform_(0.01, 4.0)
            bn.running_mean.uniform_(-1.0, 1.0)
    return model.eval()
'''


def _model(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(FACTORY)
    namespace: dict = {}
    exec(FACTORY, namespace)
    return path, namespace["build"]()


def _expected(bn: nn.BatchNorm2d) -> np.ndarray:
    return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()


@pytest.mark.parametrize("form", ["pt2", "factory"])
def test_each_folded_batchnorm_is_recorded_on_its_layers_weight(tmp_path, form):
    path, model = _model(tmp_path)
    if form == "pt2":
        torch.export.save(torch.export.export(model, (torch.randn(2, 3, 14, 14),)), tmp_path / "net.pt2")
        source = load_source(str(tmp_path / "net.pt2"))
    else:
        source = load_source(f"{path}:build", input_specs=parse_input_shapes(["1,3,14,14"]), trust_code=True)
    graph = cleanup(source.ir).graph
    assert "BatchNormalization" not in [node.op_type for node in graph]  # the exporter folded both
    factors = fold_factors.factors(graph)
    assert sorted(factors) == ["0.weight", "3.weight"]  # the Linear had no BatchNorm
    np.testing.assert_allclose(factors["0.weight"].reshape(-1), _expected(model[1]), rtol=1e-6)
    assert factors["0.weight"].shape == (4, 1, 1, 1)
    np.testing.assert_allclose(factors["3.weight"].reshape(-1), _expected(model[4]), rtol=1e-6)
    assert factors["3.weight"].shape == (1, 5, 1, 1)  # ConvTranspose: output channels on axis 1
    # and the gammas, which --prune-importance bn ranks channels by
    np.testing.assert_allclose(fold_factors.gamma(graph, "0.weight"), model[1].weight.detach().double().numpy())
    records = prune_global(cleanup(source.ir), 0.5, magnitudes=Magnitudes.AS_TRAINED)
    assert [r.ranked_as_trained for r in records] == [True, True, False]


@pytest.mark.parametrize("compile_with", ["trace", "script"])
def test_torchscript_exporter_folds_are_recorded(tmp_path, compile_with):
    """TorchScript's exporter folds the Conv's BatchNorm (eps 1e-3 here: a traced module has it only in its
    graph, a scripted one as a constant) and leaves the ConvTranspose's as a BatchNormalization."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=1e-3), nn.ReLU(), nn.ConvTranspose2d(4, 5, 2, 2),
                          nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 24 * 24, 6))
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.weight.uniform_(0.5, 2.0)
            bn.running_var.uniform_(0.0005, 0.01)  # of eps's order: a wrong eps would not match
    model.eval()
    example = torch.randn(2, 3, 14, 14)
    compiled = torch.jit.trace(model, example) if compile_with == "trace" else torch.jit.script(model)
    torch.jit.save(compiled, tmp_path / "net.pt")
    graph = cleanup(load_source(str(tmp_path / "net.pt"), input_specs=parse_input_shapes(["1,3,14,14"])).ir).graph
    assert [node.op_type for node in graph].count("BatchNormalization") == 1  # the ConvTranspose's
    factors = fold_factors.factors(graph)
    assert len(factors) == 1
    (name, factor), = factors.items()
    conv = next(node for node in graph if node.op_type == "Conv")
    assert conv.inputs[1].name == name and factor.shape == (4, 1, 1, 1)
    np.testing.assert_allclose(factor.reshape(-1), _expected(model[1]), rtol=1e-6)
    np.testing.assert_allclose(fold_factors.gamma(graph, name), model[1].weight.detach().double().numpy())
    records = prune_global(cleanup(load_source(str(tmp_path / "net.pt"),
                                               input_specs=parse_input_shapes(["1,3,14,14"])).ir),
                           0.5, magnitudes=Magnitudes.AS_TRAINED)
    assert [r.ranked_as_trained for r in records] == [True, False, False]


def _keras_model(keras):
    """Conv2D -> BatchNormalization -> ReLU -> DepthwiseConv2D -> BatchNormalization -> Flatten -> Dense ->
    BatchNormalization, with statistics far from their initial values."""
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 3), name="image")
    x = layers.ReLU()(layers.BatchNormalization(name="bn_conv")(layers.Conv2D(4, 3, name="conv")(inputs)))
    x = layers.BatchNormalization(name="bn_dw")(layers.DepthwiseConv2D(3, name="dw")(x))
    x = layers.BatchNormalization(name="bn_dense")(layers.Dense(5, name="dense")(layers.Flatten()(x)))
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for name, channels in (("bn_conv", 4), ("bn_dw", 4), ("bn_dense", 5)):
        gamma, beta = rng.uniform(0.5, 2.0, channels), rng.uniform(-1, 1, channels)
        mean, var = rng.uniform(-1, 1, channels), rng.uniform(0.01, 4.0, channels)
        model.get_layer(name).set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
    return model


@pytest.mark.parametrize("flavour", ["tf_keras", "keras"])
def test_keras_weights_rank_as_trained_whether_tensorflow_folded_their_batchnorm_or_not(tmp_path, flavour):
    """TensorFlow folds some BatchNorms into the layer before (tf.keras's three here, Keras 3's first only:
    the others stay a Mul and an Add); either way the IR's weight with its recorded factors divided out is
    the Keras kernel."""
    import importlib

    model = _keras_model(importlib.import_module(flavour))
    path = tmp_path / ("model.h5" if flavour == "tf_keras" else "model.keras")
    model.save(path)
    graph = cleanup(load_source(str(path)).ir).graph
    weights = {node.op_type + str(node.attributes.get_int("group", 1)): node.inputs[1].name for node in graph
               if node.op_type in ("Conv", "MatMul", "Gemm")}
    kernels = {"Conv1": np.moveaxis(model.get_layer("conv").get_weights()[0], (3, 2), (0, 1)),
               "Conv4": np.moveaxis(model.get_layer("dw").get_weights()[0], (2, 3), (0, 1)).reshape(4, 1, 3, 3),
               "MatMul1": model.get_layer("dense").get_weights()[0]}
    assert sorted(weights) == sorted(kernels)
    recorded = fold_factors.factors(graph)
    assert weights["Conv1"] in recorded  # folded by TensorFlow in both
    np.testing.assert_allclose(fold_factors.gamma(graph, weights["Conv1"]),
                               model.get_layer("bn_conv").get_weights()[0], rtol=1e-6)
    for key, name in weights.items():
        value = graph.initializers[name].const_value.numpy()
        unfolded, _ = fold_factors.as_trained(graph, name, value)
        np.testing.assert_allclose(unfolded, np.abs(kernels[key]), rtol=1e-4, atol=1e-6, err_msg=key)

"""The BatchNorm folds torch.onnx's exporter makes are recorded as fold factors (qconvert/ir/fold_factors.py),
for .pt2 files and for modules from a Python factory, so that pruning ranks the weights as trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.ir import fold_factors
from qconvert.passes.pipelines import cleanup
from qconvert.passes.prune_magnitude import prune_global

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
    records = prune_global(cleanup(source.ir), 0.5)
    assert [r.ranked_as_trained for r in records] == [True, True, False]

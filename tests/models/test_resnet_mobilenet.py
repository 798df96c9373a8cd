"""The residual and MobileNet-style references: tiny builds train, their saved programs hold the
structures they exist for (residual Adds with and without ReLU, projection shortcuts, depthwise convs,
SE gates, HardSwish, inverted residuals), and the saved files agree with the eager model."""

import collections

import numpy as np
import pytest
import torch

from models import mobilenet_torch, resnet_torch

NAMES = ("resnet", "mobilenet")
# Minimum eval top-1 of the tiny variants (measured: resnet 0.88, mobilenet 0.91).
TINY_THRESHOLDS = {"resnet": 0.8, "mobilenet": 0.8}
MODULES = {"resnet": resnet_torch, "mobilenet": mobilenet_torch}


@pytest.fixture(scope="module")
def tiny_dir(tiny_models):
    """The session's tiny builds (tests/conftest.py), shared with the quantization and backend tests."""
    return tiny_models


def call_nodes(program):
    return [n for n in program.graph.nodes if n.op == "call_function"]


def op_counts(program):
    return collections.Counter(str(n.target) for n in call_nodes(program))


@pytest.mark.parametrize("name", NAMES)
def test_tiny_build_files_and_metric(tiny_dir, name):
    import json

    entry = json.loads((tiny_dir / "manifest.json").read_text())["models"][name]
    assert entry["value"] >= TINY_THRESHOLDS[name], entry
    for filename in entry["files"]:
        assert (tiny_dir / filename).is_file(), filename
    calib = np.load(tiny_dir / f"{name}_calib.npz")
    assert calib.files == ["x"] and calib["x"].shape == (256, 3, 32, 32)


@pytest.mark.parametrize("name", NAMES)
def test_saved_programs_agree_with_weights_and_batch_is_dynamic(tiny_dir, name):
    x = torch.from_numpy(np.load(tiny_dir / f"{name}_eval.npz")["x"][:3])
    model = MODULES[name].build_tiny().eval()
    model.load_state_dict(torch.load(tiny_dir / f"{name}_weights.pt"))
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.export.load(tiny_dir / f"{name}.pt2").module()(x), expected)
        torch.testing.assert_close(torch.jit.load(tiny_dir / f"{name}.pt")(x), expected)
        assert torch.export.load(tiny_dir / f"{name}.pt2").module()(x[:1]).shape == (1, 10)


def test_resnet_has_both_add_forms_and_both_shortcuts(tiny_dir):
    program = torch.export.load(tiny_dir / "resnet.pt2")
    adds = [n for n in call_nodes(program) if str(n.target) == "aten.add.Tensor"]
    users = [sorted(str(u.target) for u in n.users) for n in adds]
    assert len(adds) == 6
    assert users.count(["aten.relu.default"]) == 4
    # Stage 2's first sum feeds the next block's conv and its identity Add; the last sum feeds the pooling.
    assert ["aten.add.Tensor", "aten.conv2d.default"] in users
    assert ["aten.adaptive_avg_pool2d.default"] in users
    convs = [n for n in call_nodes(program) if str(n.target) == "aten.conv2d.default"]
    kernels = collections.Counter(tuple(n.args[1].meta["val"].shape[2:]) for n in convs)
    assert kernels == {(3, 3): 13, (1, 1): 2}  # stem + 12 block convs, two projection shortcuts


def test_mobilenet_has_depthwise_se_hardswish_and_inverted_residuals(tiny_dir):
    program = torch.export.load(tiny_dir / "mobilenet.pt2")
    counts = op_counts(program)
    assert counts["aten.hardswish.default"] == 10
    assert counts["aten.hardsigmoid.default"] == 3 and counts["aten.sigmoid.default"] == 1
    assert counts["aten.mul.Tensor"] == 4  # the SE gates
    assert counts["aten.batch_norm.default"] == 17
    depthwise = [n for n in call_nodes(program)
                 if str(n.target) == "aten.conv2d.default" and len(n.args) == 7 and n.args[6] > 1]
    assert len(depthwise) == 5
    assert all(n.args[1].meta["val"].shape[1] == 1 for n in depthwise)  # one input channel per group
    # The residual sums have no activation after them.
    adds = [n for n in call_nodes(program) if str(n.target) == "aten.add.Tensor"]
    assert len(adds) == 3
    assert all(str(u.target) == "aten.conv2d.default" for n in adds for u in n.users)


def test_default_builds_keep_their_size():
    # Changing the defaults breaks the shipped weights (build() is the trained configuration).
    resnet, mobilenet = resnet_torch.build(), mobilenet_torch.build()
    assert sum(p.numel() for p in resnet.parameters()) == 175_258
    assert sum(p.numel() for p in mobilenet.parameters()) == 50_506
    with torch.no_grad():
        assert resnet.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        assert mobilenet.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

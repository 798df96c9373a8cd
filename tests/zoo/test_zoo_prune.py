"""Channel pruning on the zoo's residual and Concat architectures (random weights, 32x32 inputs, through
the zoo's own BatchNorm randomization and .pt2 export): groups found, zeroing equals removal exactly in
onnxruntime, and every group left alone says why in one line. The whole zoo is tabled in
bench/ZOO_PRUNE.md (bench/zoo_prune.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.zoo.registry import select
from models.zoo.torch_common import import_torchvision, prepare, save_pt2, spec
from qconvert.converters import load_source
from qconvert.passes import cleanup
from qconvert.passes.prune_channels import prune_channels
from tests.passes.channel_zeroing import zeroed
from tests.passes.helpers import random_inputs, run


def _resnet():
    """torchvision's ResNet with one BasicBlock per stage: every residual pattern of resnet18/50 (identity
    and 1x1-downsample shortcuts), a quarter of the blocks."""
    resnet = import_torchvision().models.resnet
    return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)


def _squeezenet():
    return import_torchvision().models.squeezenet1_1(weights=None, num_classes=10)


def _cleaned(name, factory, folder):
    import torch

    torch.manual_seed(0)
    entry = replace(select(["squeezenet1_1"])[0], name=name, arch=name, inputs=(spec("x", (2, 3, 32, 32)),))
    save_pt2(prepare(factory(), entry), entry, folder)
    return cleanup(load_source(str(folder / entry.file)).ir)


@pytest.mark.parametrize("name, factory, groups, prunable", [
    # ResNet: one group per stage's residual stream and per block's inner conv, the classifier frozen.
    ("resnet", _resnet, 9, 8),
    # SqueezeNet: every Fire module's squeeze, expand1x1 and expand3x3 (Concat'ed) its own group; the
    # classifier conv feeds the graph output.
    ("squeezenet", _squeezenet, 26, 25),
])
def test_zoo_channel_pruning_is_exact(tmp_path, name, factory, groups, prunable):
    model = _cleaned(name, factory, tmp_path)
    pruned, report = prune_channels(model, 0.5, multiple_of=1)
    assert len(report.groups) == groups
    assert sum(g.frozen is None for g in report.groups) == prunable
    for group in report.groups:
        assert group.frozen is None or (group.frozen and "\n" not in group.frozen)
        assert group.kept == (group.channels if group.frozen else -(-group.channels // 2))
    if name == "resnet":
        # Stage streams: the stem and layer1's second conv write it, layer1.conv1, layer2.conv1 and layer2's
        # downsample read it (5 nodes); each later stream is written by a block's second conv and its
        # downsample and read by the next stage's two (4); inner convs are 2; the last stream feeds the fc
        # through the flattening Reshape.
        assert [len(g.members) for g in report.groups] == [5, 2, 2, 4, 2, 4, 2, 4, 1]
        op_of = {node.name: node.op_type for node in model.graph}
        assert [op_of[m] for m in report.groups[-2].members] == ["Conv", "Conv", "Reshape", "Gemm"]
    feeds = random_inputs(model)
    want, got = run(zeroed(model, report.keep), feeds)[0], run(pruned, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    assert np.abs(got - run(model, feeds)[0]).max() > 1e-2 * np.abs(want).max()  # channels did go
    assert report.params_after < 0.3 * report.params_before and report.macs_after < 0.3 * report.macs_before

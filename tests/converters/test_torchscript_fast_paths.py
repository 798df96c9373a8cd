"""TorchScript files record the fast paths their module took when traced; the exporter gets symbolics for them."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.parity import run_ir
from qconvert.report.metrics import sqnr_db


def _attention_block():
    import torch

    class Block(torch.nn.Module):
        """A ViT encoder block's attention, as torchvision writes it (batch-first, need_weights=False)."""

        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm(16)
            self.attention = torch.nn.MultiheadAttention(16, 4, batch_first=True)
            self.head = torch.nn.Linear(16, 5)

        def forward(self, x):
            y = self.norm(x)
            y, _ = self.attention(y, y, y, need_weights=False)
            return self.head(x + y)

    torch.manual_seed(0)
    return Block().eval()


def test_traced_multi_head_attention_fast_path_exports(tmp_path):
    import torch

    block = _attention_block()
    with torch.no_grad():
        traced = torch.jit.trace(block, torch.randn(2, 7, 16))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    if "aten::_native_multi_head_attention" not in kinds:
        pytest.skip("this torch build traced nn.MultiheadAttention without its fast path")
    path = tmp_path / "block.pt"
    traced.save(str(path))
    source = load_source(str(path), input_specs=parse_input_shapes(["1,7,16"]))
    x = np.random.default_rng(1).standard_normal((3, 7, 16)).astype(np.float32)
    (got,) = run_ir(source.ir, {"x": x})
    with torch.no_grad():
        want = block(torch.from_numpy(x)).numpy()
    assert sqnr_db(want, got) > 100

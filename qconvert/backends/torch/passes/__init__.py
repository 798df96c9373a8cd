"""The torch backend's IR passes and its preparation pipelines, run on a copy of the IR before emission.

The rewrites the torch emitters need live here, not in the emitters: an emitter then maps one IR node onto
its torch calls without looking at its neighbours. Their results are torch forms, not ONNX (a MatMul with a
bias input), so they run only on the torch backend's own copy of the IR: training (qconvert.train) builds
from the unprepared IR, where every initializer keeps its own node.
"""

from __future__ import annotations

import onnx_ir as ir

from qconvert.backends.torch.passes.fuse_matmul_bias import FuseMatMulBias
from qconvert.backends.torch.passes.merge_shared_input_matmuls import MergeSharedInputMatMuls
from qconvert.passes.pipelines import run_pipeline

# torch-fp32/fp16/bf16 and torch-int8 (float fallbacks included): a constant bias Add into its MatMul, which
# emits as one F.linear (addmm).
TORCH_PREPARATION: list[ir.passes.PassBase] = [
    FuseMatMulBias(),
]

# torch-dynamic, on the smoothed IR (qconvert.passes.smooth_quant.prepare_for_dynamic).
TORCH_DYNAMIC_PREPARATION: list[ir.passes.PassBase] = [
    # First: the merged MatMul takes its members' biases.
    FuseMatMulBias(),
    MergeSharedInputMatMuls(),
]


def prepare_for_torch(model: ir.Model, mode: str) -> ir.Model:
    """The IR the torch emitter of `mode` (float | int8 | dynamic) reads, on a clone of `model`: nodes and
    values are copied, tensors shared (the passes add initializers, they never change one in place), and
    attributes stay what they are (a serialized copy would round a float attribute to float32)."""
    passes = TORCH_DYNAMIC_PREPARATION if mode == "dynamic" else TORCH_PREPARATION
    return run_pipeline(model.clone(), passes, f"torch {mode} preparation")

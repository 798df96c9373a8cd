"""Named pass pipelines, and the runner that turns a pass failure into a PassError."""

from __future__ import annotations

from collections.abc import Sequence

import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass

from qconvert.errors import PassError
from qconvert.ir.values import copy_model
from qconvert.passes.channel_affine_to_conv import ChannelAffineToConv
from qconvert.passes.channel_shuffle import ChannelShuffleToGather
from qconvert.passes.fold_affine import FoldChannelAffine
from qconvert.passes.fold_batchnorm import FoldBatchNorm
from qconvert.passes.fold_constants import FoldConstants
from qconvert.passes.fuse_gelu import FuseGelu
from qconvert.passes.fuse_prelu import FusePRelu
from qconvert.passes.guard_pad_pool import GuardPadBeforePool
from qconvert.passes.infer_shapes import InferShapes
from qconvert.passes.remove_dead_nodes import RemoveDeadNodes
from qconvert.passes.remove_identity import RemoveIdentity
from qconvert.passes.strip_debug_metadata import StripDebugMetadata
from qconvert.passes.unfold_conv_transpose import UnfoldConvTranspose

CLEANUP: list[ir.passes.PassBase] = [
    # Any time: exporters' per-node stack traces are ~5% of a small model's file and would
    # travel into every artifact (and break fp16's ≤ 0.52× size).
    StripDebugMetadata(),
    # First: an Identity between Conv and BatchNormalization hides the pattern from
    # FoldBatchNorm.
    RemoveIdentity(),
    # Before FoldBatchNorm: turns Constant nodes and constant subgraphs (Cast, Reshape of
    # weights...) into the initializers FoldBatchNorm requires.
    FoldConstants(),
    FoldBatchNorm(),
    # After FoldConstants (its constants must be initializers): one Gelu for the exporters' erf formula.
    FuseGelu(),
    # After FoldConstants too: one PRelu for the Relu/Neg/Mul/Add that Keras's PReLU exports as.
    FusePRelu(),
    # Any time: the float IR runs in onnxruntime (the adapters' check, onnx-* targets), whose
    # PadFusion would otherwise change a zero Pad -> MaxPool.
    GuardPadBeforePool(),
    # After every pass that leaves things behind: replaced weights, Constant/Shape nodes
    # whose consumers were folded.
    RemoveDeadNodes(),
    # FoldBatchNorm inserts nodes; emitters expect producers before consumers.
    TopologicalSortPass(),
    # Last, on the sorted graph: dims computed from the batch (Shape -> Concat -> Reshape) that the
    # folder kept at run time, followed element by element.
    InferShapes(),
]


# Static int8 only (float targets keep the graph as the source wrote it): layers that have no integer
# kernel in some runtime become ones that do.
INT8_PREPARATION: list[ir.passes.PassBase] = [
    UnfoldConvTranspose(),
    # Per-channel Mul/Add (exported BatchNormalization, Keras Rescaling/Normalization) into the Conv
    # next to it, where that is exact.
    FoldChannelAffine(),
    # After FoldChannelAffine: only what it could not fold becomes one depthwise 1x1 Conv.
    ChannelAffineToConv(),
    RemoveDeadNodes(),
    TopologicalSortPass(),
]


# The float TFLite emitter only (it carries images channels-last): channel permutations spelled as 5-D
# reshapes around a transpose become one channel Gather, which needs no layout change.
TFLITE_PREPARATION: list[ir.passes.PassBase] = [
    ChannelShuffleToGather(),
    # Upsamplers as a 1x1 CONV_2D and DEPTH_TO_SPACE (static shapes; TRANSPOSE_CONV computes its output
    # size at run time), grouped ones and run-time biases included.
    UnfoldConvTranspose(split_groups=True, runtime_bias=True),
    RemoveDeadNodes(),
    TopologicalSortPass(),
]


def run_pipeline(model: ir.Model, passes: Sequence[ir.passes.PassBase], name: str) -> ir.Model:
    """Run ``passes`` in order on ``model`` and return the resulting model.

    Raises PassError naming the failing pass and those that ran before it, e.g.
    ``cleanup: pass FoldBatchNorm failed after [RemoveIdentity, FoldConstants]: ...``.
    Also raises it when a pass changes the graph's input/output names or drops metadata.
    """
    done: list[str] = []
    for pass_ in passes:
        pass_name = type(pass_).__name__
        where = f"{name}: pass {pass_name} failed after [{', '.join(done)}]"
        names, metadata = _io_names(model), dict(model.metadata_props)
        try:
            model = pass_(model).model
        except Exception as error:  # any failure inside a pass is reported the same way
            raise PassError(f"{where}: {type(error).__name__}: {error}") from error
        if _io_names(model) != names:
            raise PassError(f"{where}: it renamed graph inputs/outputs {names} to {_io_names(model)}")
        # Adding metadata is allowed; dropping or changing an entry is not.
        lost = {k: v for k, v in metadata.items() if model.metadata_props.get(k) != v}
        if lost:
            raise PassError(f"{where}: it dropped or changed metadata_props {sorted(lost)}")
        done.append(pass_name)
    return model


def cleanup(model: ir.Model) -> ir.Model:
    """Run the CLEANUP pipeline."""
    return run_pipeline(model, CLEANUP, "cleanup")


def prepare_for_int8(model: ir.Model) -> ir.Model:
    """Run the INT8_PREPARATION pipeline on a copy: the cleaned float IR stays as it is for float targets."""
    return run_pipeline(copy_model(model), INT8_PREPARATION, "int8 preparation")


def prepare_for_tflite(model: ir.Model) -> ir.Model:
    """Run the TFLITE_PREPARATION pipeline on a copy."""
    return run_pipeline(copy_model(model), TFLITE_PREPARATION, "tflite preparation")


def _io_names(model: ir.Model) -> tuple[list[str], list[str]]:
    return [v.name for v in model.graph.inputs], [v.name for v in model.graph.outputs]

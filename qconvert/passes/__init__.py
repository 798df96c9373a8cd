"""Graph passes on the IR; ``cleanup`` runs the standard pipeline."""

from qconvert.passes.fold_batchnorm import FoldBatchNorm
from qconvert.passes.fold_constants import FoldConstants
from qconvert.passes.pipelines import CLEANUP, INT8_PREPARATION, cleanup, prepare_for_int8, run_pipeline
from qconvert.passes.remove_dead_nodes import RemoveDeadNodes
from qconvert.passes.remove_identity import RemoveIdentity

__all__ = [
    "CLEANUP",
    "INT8_PREPARATION",
    "FoldBatchNorm",
    "FoldConstants",
    "RemoveDeadNodes",
    "RemoveIdentity",
    "cleanup",
    "prepare_for_int8",
    "run_pipeline",
]

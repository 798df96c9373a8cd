"""Graph passes on the IR; ``cleanup`` runs the standard pipeline."""

from qconvert.passes.fold_batchnorm import FoldBatchNorm
from qconvert.passes.fold_constants import FoldConstants
from qconvert.passes.pipelines import CLEANUP, cleanup, run_pipeline
from qconvert.passes.remove_dead_nodes import RemoveDeadNodes
from qconvert.passes.remove_identity import RemoveIdentity

__all__ = [
    "CLEANUP",
    "FoldBatchNorm",
    "FoldConstants",
    "RemoveDeadNodes",
    "RemoveIdentity",
    "cleanup",
    "run_pipeline",
]

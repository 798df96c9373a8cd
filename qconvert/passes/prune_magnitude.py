"""Unstructured L1 magnitude pruning: the smallest |w| of the layers' weights set to zero.

Before (a weight at 50%, per layer)::

    y = Conv(x, W = [[0.9, -0.1], [0.05, -0.7]], B)

After::

    y = Conv(x, W = [[0.9, 0.0], [0.0, -0.7]], B)

The graph keeps its nodes and shapes; only weight initializers change. Weights are those of Conv,
ConvTranspose, Gemm and MatMul (qconvert.ir.layer_weights), never biases. Two thresholds (`Threshold`): each
weight to the sparsity by its own magnitudes (PER_LAYER), or one magnitude across every prunable weight
(GLOBAL), which takes more from layers of small weights and less from those of large ones. Magnitudes
(`Magnitudes`) are the IR's weights as they are, BatchNorm folded in, or as trained: where a BatchNorm (or
its exported Mul) was folded into a layer, its factors divided out again (qconvert/ir/fold_factors.py), as
torch.nn.utils.prune and tfmot rank a model that keeps its BatchNorm. Neither ranks better on every model
(bench/PRUNE.md). Counts are exact: round(sparsity × elements) zeros, ties at the threshold broken in favour
of the earlier element (graph order of the weights, then row-major), so a run is reproducible.

Options (keyword-only): `sparsity` in [0, 1), `threshold`, and `scope` (PruneScope): `depthwise`
includes depthwise conv weights (left dense by default: one k×k filter per channel has little to give),
`keep_first_last` leaves the first and last layers of the network dense. A weight shared by several
layers is pruned once; one also read by any other node (an Add, a Reshape) is left alone, since its zeros
would change that node too. After the call, `pruned` holds a PrunedWeight per weight in scope.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qconvert.ir import fold_factors
from qconvert.ir.layer_weights import LayerWeight, layer_weights

logger = logging.getLogger(__name__)


class Magnitudes(enum.Enum):
    """What the threshold compares (bench/PRUNE.md measures both: neither wins on every model)."""

    FOLDED = "folded"  # the IR's weights as they are, BatchNorm folded in: what the deployed layer computes with
    AS_TRAINED = "trained"  # folded BatchNorm factors divided out (qconvert/ir/fold_factors.py)


class Threshold(enum.Enum):
    PER_LAYER = "layer"  # each weight to the sparsity by its own magnitudes
    GLOBAL = "global"  # one magnitude threshold across every prunable weight


@dataclass(frozen=True)
class PruneScope:
    depthwise: bool = False  # include depthwise conv weights
    keep_first_last: bool = False  # leave the network's first and last layers dense


@dataclass(frozen=True)
class PrunedWeight:
    name: str  # the initializer
    op: str  # the layer that reads it (the first, where several do)
    params: int
    zeros: int  # after pruning
    dense: str | None = None  # why a weight in scope was left dense (N:M); None when pruned
    ranked_as_trained: bool = False  # its fold factors were divided out before ranking


def weights_in_scope(model: ir.Model, scope: PruneScope) -> list[LayerWeight]:
    """The layer weights `scope` lets pruning change, in graph order. First and last are the network's
    first and last layers whatever they are (the depthwise filter applies after)."""
    weights = layer_weights(model)
    if scope.keep_first_last:
        weights = weights[1:-1]
    kept = []
    for weight in weights:
        if weight.shared_with_other_ops:
            logger.debug("%s: also read by a node that is not a layer; left dense", weight.name)
        elif scope.depthwise or not weight.depthwise:
            kept.append(weight)
    return kept


def smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """A boolean mask of the `count` smallest of a flat array, ties going to the earlier element."""
    mask = np.zeros(magnitudes.size, bool)
    if count <= 0:
        return mask
    if count >= magnitudes.size:
        mask[:] = True
        return mask
    threshold = np.partition(magnitudes, count - 1)[count - 1]
    mask = magnitudes < threshold
    ties = np.flatnonzero(magnitudes == threshold)[: count - int(mask.sum())]
    mask[ties] = True
    return mask


def _zero(weight: LayerWeight, mask: np.ndarray, as_trained: bool) -> PrunedWeight:
    array = weight.array.copy()
    array.reshape(-1)[mask] = 0
    weight.value.const_value = ir.tensor(array, name=weight.name)
    return PrunedWeight(weight.name, weight.op, array.size, int(array.size - np.count_nonzero(array)),
                        ranked_as_trained=as_trained)


class PruneMagnitude(ir.passes.InPlacePass):
    def __init__(self, *, sparsity: float, threshold: Threshold = Threshold.GLOBAL, scope: PruneScope = PruneScope(),
                 magnitudes: Magnitudes = Magnitudes.FOLDED):
        super().__init__()
        if not 0 <= sparsity < 1:
            raise ValueError(f"sparsity {sparsity}: from 0 up to (not including) 1")
        self.sparsity, self.threshold, self.scope, self.magnitudes = sparsity, threshold, scope, magnitudes
        self.pruned: list[PrunedWeight] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        weights = weights_in_scope(model, self.scope)
        # float64: weights of different dtypes (a float16 layer) compare on one scale
        if self.magnitudes is Magnitudes.AS_TRAINED:
            ranked = [fold_factors.as_trained(model.graph, w.name, w.array) for w in weights]
        else:
            ranked = [(np.abs(w.array.astype(np.float64)), False) for w in weights]
        magnitudes = [magnitude.reshape(-1) for magnitude, _ in ranked]
        if self.threshold is Threshold.PER_LAYER:
            masks = [smallest(m, _count(self.sparsity, m.size)) for m in magnitudes]
        else:
            flat = np.concatenate(magnitudes) if magnitudes else np.zeros(0, np.float64)
            joint = smallest(flat, _count(self.sparsity, flat.size))
            masks = np.split(joint, np.cumsum([m.size for m in magnitudes])[:-1])
        before = sum(int(np.count_nonzero(w.array == 0)) for w in weights)
        self.pruned = [_zero(w, mask, unfolded) for w, mask, (_, unfolded) in zip(weights, masks, ranked)]
        return ir.passes.PassResult(model, modified=sum(p.zeros for p in self.pruned) > before)


def _count(sparsity: float, size: int) -> int:
    return int(np.floor(sparsity * size + 0.5))


def prune_layerwise(model: ir.Model, sparsity: float, scope: PruneScope = PruneScope(),
                    magnitudes: Magnitudes = Magnitudes.FOLDED) -> list[PrunedWeight]:
    """Each weight in scope of `model` (in place) at `sparsity` by its own threshold."""
    pass_ = PruneMagnitude(sparsity=sparsity, threshold=Threshold.PER_LAYER, scope=scope, magnitudes=magnitudes)
    pass_(model)
    return pass_.pruned


def prune_global(model: ir.Model, sparsity: float, scope: PruneScope = PruneScope(),
                 magnitudes: Magnitudes = Magnitudes.FOLDED) -> list[PrunedWeight]:
    """The weights in scope of `model` (in place) at `sparsity` together, by one magnitude threshold."""
    pass_ = PruneMagnitude(sparsity=sparsity, threshold=Threshold.GLOBAL, scope=scope, magnitudes=magnitudes)
    pass_(model)
    return pass_.pruned

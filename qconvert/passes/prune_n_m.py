"""N:M semi-structured pruning: of every M consecutive weights along the axis a layer sums over, the N
largest |w| are kept (2:4 is the pattern sparse tensor cores run at twice the dense rate).

Before (2:4, a Gemm with transB=1, so each row of W is one output's reduction)::

    y = Gemm(x, W = [[0.9, -0.1, 0.3, 0.05], ...], B, transB=1)

After::

    y = Gemm(x, W = [[0.9, 0.0, 0.3, 0.0], ...], B, transB=1)

The axis is the layer's input axis (qconvert.ir.layer_weights): a Conv's input channels (weight axis 1),
a ConvTranspose's (axis 0), a Gemm's K (axis 0, or 1 with transB), a MatMul's K (axis -2 of a constant
B, -1 of a constant A); a group is M consecutive input channels at one output and one kernel tap. A
weight whose reduction length is not a multiple of M, or that layers read along different axes, is left
dense and its record says why. Ties keep the earlier element. Scope as in prune_magnitude.

Options (keyword-only): `n`, `m` (0 < n < m), `scope`. After the call, `pruned` holds a PrunedWeight per
weight in scope.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qconvert.ir.layer_weights import LayerWeight
from qconvert.passes.prune_magnitude import PrunedWeight, PruneScope, weights_in_scope

logger = logging.getLogger(__name__)


def why_dense(weight: LayerWeight, m: int) -> str | None:
    """Why the N:M pattern cannot be laid on this weight; None when it can."""
    if len(weight.reduction_axes) != 1:
        return f"read along axes {sorted(weight.reduction_axes)} by different layers"
    axis = next(iter(weight.reduction_axes))
    length = weight.array.shape[axis]
    if length % m:
        return f"reduction length {length} (axis {axis}) is not a multiple of {m}"
    return None


def n_m_mask(array: np.ndarray, axis: int, n: int, m: int) -> np.ndarray:
    """True where a weight is kept: the n largest |w| of each run of m along `axis`, earlier first on ties."""
    moved = np.moveaxis(np.abs(array), axis, -1)
    groups = moved.reshape(-1, m)
    order = np.argsort(-groups, axis=1, kind="stable")  # largest first; a stable sort keeps ties in order
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, order[:, :n], True, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


class PruneNM(ir.passes.InPlacePass):
    def __init__(self, *, n: int, m: int, scope: PruneScope = PruneScope()):
        super().__init__()
        if not 0 < n < m:
            raise ValueError(f"N:M pruning needs 0 < N < M, not {n}:{m}")
        self.n, self.m, self.scope = n, m, scope
        self.pruned: list[PrunedWeight] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.pruned, modified = [], False
        for weight in weights_in_scope(model, self.scope):
            array = weight.array
            reason = why_dense(weight, self.m)
            if reason is None:
                pruned = np.where(n_m_mask(array, next(iter(weight.reduction_axes)), self.n, self.m), array, 0)
                pruned = pruned.astype(array.dtype)
                modified |= bool(np.any(pruned != array))
                weight.value.const_value = ir.tensor(pruned, name=weight.name)
                array = pruned
            else:
                logger.debug("%s left dense: %s", weight.name, reason)
            self.pruned.append(PrunedWeight(weight.name, weight.op, array.size,
                                            int(array.size - np.count_nonzero(array)), reason))
        return ir.passes.PassResult(model, modified=modified)


def prune_n_m(model: ir.Model, n: int, m: int, scope: PruneScope = PruneScope()) -> list[PrunedWeight]:
    """`model`'s weights in scope (in place) to the N:M pattern; those that cannot take it left dense."""
    pass_ = PruneNM(n=n, m=m, scope=scope)
    pass_(model)
    return pass_.pruned

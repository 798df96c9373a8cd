"""What folding multiplied each layer weight by (and the folded BatchNorm's gamma), for pruning.

Folding a BatchNormalization (or an exported one's Mul) into a Conv, Gemm or MatMul scales each output
channel of its weight by gamma / sqrt(var + eps), and folding one forward scales its input columns. Those
factors come from activation statistics, not from training, and differ by layer and by channel;
`--prune-magnitudes trained` divides them out again so that weights rank as torch.nn.utils.prune and tfmot rank a
model that keeps its BatchNorm, and `--prune-importance bn` ranks channels by the gamma kept here.
bench/PRUNE.md measures what each ranking does.

The factors live on the main graph in memory (`ir.Graph.meta`), keyed by initializer name, each an array
that broadcasts against its weight; folds multiply into it. `copy_model` carries them; a graph read from a
file has none, and its weights then rank as they are. Passes that change a weight's shape or name update its
entry (`take`, `rename`).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

KEY = "qconvert.fold_factors"
GAMMAS = "qconvert.fold_gammas"  # the folded BatchNorm's gamma, for channel pruning's --prune-importance bn


def _entries(graph: ir.Graph, key: str) -> dict[str, np.ndarray]:
    found = graph.meta.get(key)
    if found is None:
        found = graph.meta[key] = {}
    return found


def factors(graph: ir.Graph) -> dict[str, np.ndarray]:
    """The graph's factors by weight name (the live dict: callers that change it change the graph's)."""
    return _entries(graph, KEY)


def gammas(graph: ir.Graph) -> dict[str, np.ndarray]:
    """The gamma of the BatchNorm folded into each weight, shaped as its factor (the live dict)."""
    return _entries(graph, GAMMAS)


def batchnorm_fold(weight: np.ndarray, axis: int, gamma: np.ndarray | None, var: np.ndarray,
                   eps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(factor, gamma), both shaped to broadcast against `weight`, of a BatchNorm over `weight`'s output
    `axis`; None where its channel count is not that axis's."""
    gamma = np.ones_like(var) if gamma is None else gamma
    if weight.ndim < 2 or weight.shape[axis] != gamma.size:
        return None
    shape = [1] * weight.ndim
    shape[axis] = -1
    return (gamma / np.sqrt(var + eps)).reshape(shape), gamma.reshape(shape)


def is_folded(exported: np.ndarray, weight: np.ndarray, factor: np.ndarray) -> bool:
    """Whether an exporter's initializer `exported` is `weight` × `factor` (float32 rounding aside): the
    check that a fold read back from a source framework is the one the IR holds."""
    expected = weight * factor
    tolerance = 1e-6 * max(float(np.abs(expected).max(initial=0)), 1e-12)
    return exported.shape == expected.shape and np.allclose(exported.astype(np.float64), expected, rtol=1e-4,
                                                            atol=tolerance)


class FoldedWeights:
    """Finds which of a graph's initializers a source framework's weight became once folded (an exporter
    that folds names the product anew): among those of the weight's shape, the one `is_folded` confirms."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.by_shape: dict[tuple, list[str]] = {}
        for name, value in graph.initializers.items():
            if value.const_value is not None:
                self.by_shape.setdefault(tuple(value.const_value.shape.dims), []).append(name)

    def find(self, weight: np.ndarray, factor: np.ndarray) -> str | None:
        for name in self.by_shape.get(weight.shape, []):
            if is_folded(self.graph.initializers[name].const_value.numpy(), weight, factor):
                return name
        return None


def record(graph: ir.Graph, name: str, factor: np.ndarray, gamma: np.ndarray | None = None) -> None:
    """Weight `name` was multiplied by `factor` (broadcasting against it); `gamma`: the BatchNorm's, where
    it was one."""
    entries = factors(graph)
    factor = np.asarray(factor, np.float64)
    entries[name] = entries[name] * factor if name in entries else factor
    if gamma is not None:
        gammas(graph)[name] = np.asarray(gamma, np.float64).reshape(factor.shape)


def refolded(graph: ir.Graph, name: str, factor: np.ndarray) -> None:
    """Fine-tuning trained weight `name` under a BatchNorm of its own and folded it back with `factor`: the
    weight as trained is the same, its BatchNorm scaled by `factor` (its gamma too, where one is known)."""
    record(graph, name, factor)
    found = gammas(graph)
    if name in found:
        found[name] = found[name] * np.asarray(factor, np.float64)


def gamma(graph: ir.Graph, name: str) -> np.ndarray | None:
    """The gamma of the BatchNorm folded into weight `name`, one per output channel, or None."""
    found = gammas(graph).get(name)
    return None if found is None else found.reshape(-1)


def rename(graph: ir.Graph, old: str, new: str) -> None:
    """A fold wrote weight `old` as a new initializer `new` (`old` may live on in another layer)."""
    for entries in (factors(graph), gammas(graph)):
        if old in entries:
            entries[new] = entries[old].copy()


def take(graph: ir.Graph, name: str, mask: np.ndarray, axis: int, new_name: str | None = None) -> None:
    """Weight `name` kept only the entries `mask` selects along `axis` (channel pruning), as `new_name`."""
    for entries in (factors(graph), gammas(graph)):
        kept = entries.get(name)
        if kept is None:
            continue
        if kept.shape[axis] > 1:
            kept = np.compress(mask, kept, axis=axis)
        entries[new_name or name] = kept


def as_trained(graph: ir.Graph, name: str, weight: np.ndarray) -> tuple[np.ndarray, bool]:
    """|weight| with its fold factors divided out (a factor of 0 leaves a zero weight, ranked 0), and
    whether there were any."""
    magnitude = np.abs(weight.astype(np.float64))
    factor = factors(graph).get(name)
    if factor is None:
        return magnitude, False
    factor = np.abs(factor)
    unfolded = np.divide(magnitude, factor, out=np.zeros_like(magnitude), where=factor > 0)
    return unfolded, True


def carry(source: ir.Graph, target: ir.Graph) -> None:
    """`target` (a copy of `source`) gets `source`'s entries."""
    for key in (KEY, GAMMAS):
        entries = source.meta.get(key)
        if entries:
            target.meta[key] = {name: array.copy() for name, array in entries.items()}

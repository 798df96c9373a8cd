"""SmoothQuant-style scale migration from LayerNorm outputs into the MatMuls they feed (dynamic int8).

Pretrained transformers carry a few hidden channels whose LayerNorm gain/bias are 20-100x the median.
Dynamic int8 quantizes each MatMul's activation with one scale per tensor, so those channels set the
scale and every other channel keeps a few levels. Dividing channel j of the activation by s_j and
multiplying row j of the weight by s_j computes the same product and moves part of the spread into
the weights, whose scales are per output channel (SmoothQuant, Xiao et al. 2022):

    s_j = range_x[j] ** ALPHA / range_w[j] ** (1 - ALPHA)

Data free: the activation is a LayerNorm output gamma * x_hat + beta whose x_hat has unit RMS per token,
so range_x[j] = |beta_j| + K_SIGMA * |gamma_j| (only the ratios between channels matter: a common factor
in s changes neither the per-tensor activation quantization nor the per-channel weight quantization).
range_w[j] is the largest |weight| in row j over every MatMul/Gemm the output feeds (Q, K and V share
one s).

Before::

    y = LayerNormalization(x, gamma, beta)
    q = MatMul(y, Wq);  k = MatMul(y, Wk);  r = Add(y, attention)      # post-LN residual

After::

    y' = LayerNormalization(x, gamma / s, beta / s)                     # y' = y / s
    q = MatMul(y', s * Wq);  k = MatMul(y', s * Wk)                     # rows j times s_j: same q, k
    r = Add(Mul(y', s), attention)                                      # the residual gets y back

The same function in float (up to rounding). Consumers that are not weight MatMuls (a post-LN
residual Add, a graph output) get y back through one Mul; a pre-LN block needs none. A LayerNorm whose
channel ranges are even (spread below `min_spread`) is left alone, so models without outliers keep
their graph and cost nothing. Smoothed LayerNorms are recorded in the model's metadata, and a second run
leaves them alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass

from qconvert.ir.metadata import get_meta, set_meta
from qconvert.ir.values import add_initializer, constant_array, copy_model

logger = logging.getLogger(__name__)

META_KEY = "smoothed_layernorms"  # {LayerNorm output name: channel spread before smoothing}
K_SIGMA = 3.0  # |x_hat| bound of a unit-RMS channel: a Gaussian's 99.7 %
# max/median of the channel ranges from which a LayerNorm is smoothed. Without outliers the reference
# BERT's LayerNorms measure 1.1-1.3; with pretrained-like outliers 20-100.
MIN_SPREAD = 8.0
# Migration strength, measured on the reference BERT with outliers (hidden 256, gains 25-90x; cosine of the
# hidden states, 32 eval sequences), onnx-dynamic / torch-dynamic: 0.5 (SmoothQuant's default) 0.9943 /
# 0.9750, 0.65 0.9985 / 0.9895, 0.8 0.9991 / 0.9957, 0.9 0.9995 / 0.9976, 1.0 0.9994 / 0.9985. torch's
# activations are 7-bit (fbgemm's reduce_range), so it gains from moving more into the weights.
ALPHA = 0.9


@dataclass
class Match:
    norm: ir.Node
    gamma: np.ndarray
    beta: np.ndarray | None
    weighted: list[tuple[ir.Node, np.ndarray, int]]  # (consumer, weight, axis of the input channels)
    others: list[ir.Node]  # consumers that must see the unsmoothed value
    is_output: bool


class SmoothLayerNormMatMul(ir.passes.InPlacePass):
    def __init__(self, *, alpha: float = ALPHA, min_spread: float = MIN_SPREAD):
        super().__init__()
        self.alpha, self.min_spread = alpha, min_spread

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        smoothed = dict(get_meta(model, META_KEY, {}))
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.outputs[0].name in smoothed:
                continue
            found = match(node)
            if found is None:
                continue
            x_range = np.abs(found.beta if found.beta is not None else 0.0) + K_SIGMA * np.abs(found.gamma)
            spread = float(x_range.max() / max(np.median(x_range), 1e-12))
            if spread < self.min_spread:
                logger.debug("LayerNorm %s not smoothed: channel spread %.1f", node.name, spread)
                continue
            rewrite(graph, found, smoothing_scales(found, x_range, self.alpha))
            smoothed[node.outputs[0].name] = round(spread, 2)  # its name after the rewrite
            modified = True
        if modified:
            set_meta(model, META_KEY, smoothed)
        return ir.passes.PassResult(model, modified=modified)


def smoothing_scales(found: Match, x_range: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = range_x^alpha / range_w^(1 - alpha), median 1; channels with a zero range keep s = 1."""
    w_range = np.max([np.abs(w).max(axis=1 - axis) for _, w, axis in found.weighted], axis=0)
    valid = (x_range > 0) & (w_range > 0)
    s = np.ones_like(x_range, dtype=np.float64)
    s[valid] = x_range[valid] ** alpha / w_range[valid] ** (1.0 - alpha)
    return (s / np.median(s[valid])).astype(np.float32) if valid.any() else s.astype(np.float32)


def match(node: ir.Node) -> Match | None:
    """A LayerNormalization over the last axis with constant gain/bias whose output feeds at least one
    MatMul/Gemm by a constant weight (as its first input)."""
    if node.op_type != "LayerNormalization" or node.domain not in ("", "ai.onnx"):
        return None
    if any(out.uses() for out in node.outputs[1:]):  # mean / inverse std read elsewhere
        return None
    axis = node.attributes.get_int("axis", -1)
    rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else None
    gamma = constant_array(node.inputs[1])
    beta = constant_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if not (axis == -1 or (rank is not None and axis == rank - 1)) or gamma is None or gamma.ndim != 1:
        return None
    if (len(node.inputs) > 2 and node.inputs[2] is not None and beta is None) or gamma.dtype != np.float32:
        return None
    y = node.outputs[0]
    weighted, others = [], []
    for user, index in y.uses():
        weight = _weight(user, index, len(gamma))
        if weight is None:
            others.append(user)
        else:
            weighted.append((user, *weight))
    if not weighted:
        return None
    return Match(node, gamma, beta, weighted, list(dict.fromkeys(others)), y.is_graph_output())


def _weight(user: ir.Node, index: int, channels: int) -> tuple[np.ndarray, int] | None:
    """(weight, axis holding the input channels) when `user` multiplies its input `index` by a constant."""
    if user.domain not in ("", "ai.onnx") or index != 0 or len(user.inputs) < 2 or user.inputs[1] is user.inputs[0]:
        return None
    weight = constant_array(user.inputs[1])
    if weight is None or weight.ndim != 2 or weight.dtype != np.float32:
        return None
    if user.op_type == "MatMul":
        axis = 0
    elif user.op_type == "Gemm" and not user.attributes.get_int("transA", 0):
        axis = 1 if user.attributes.get_int("transB", 0) else 0
    else:
        return None
    return (weight, axis) if weight.shape[axis] == channels else None


def rewrite(graph: ir.Graph, found: Match, s: np.ndarray) -> None:
    norm, y = found.norm, found.norm.outputs[0]
    name = y.name
    _set_constant(graph, norm, 1, found.gamma / s, f"{name}_smoothed_gamma")
    if found.beta is not None:
        _set_constant(graph, norm, 2, found.beta / s, f"{name}_smoothed_beta")
    for user, weight, axis in found.weighted:
        scaled = weight * (s[:, None] if axis == 0 else s[None, :])
        _set_constant(graph, user, 1, scaled.astype(np.float32), f"{user.inputs[1].name}_smoothed")
    if not found.others and not found.is_output:
        return
    # y' * s restores y for every consumer that is not a weight MatMul; it takes y's name (graph output).
    scale = add_initializer(graph, f"{name}_smooth_scale", s)
    restore = ir.node("Mul", [y, scale], name=f"{norm.name or name}_unsmooth")
    graph.insert_after(norm, restore)
    restored = restore.outputs[0]
    restored.type, restored.shape = y.type, y.shape
    for user in found.others:
        for index, value in enumerate(user.inputs):
            if value is y:
                user.replace_input_with(index, restored)
    if found.is_output:
        graph.outputs[:] = [restored if out is y else out for out in graph.outputs]
    y.name, restored.name = f"{name}_smoothed", name


def _set_constant(graph: ir.Graph, node: ir.Node, index: int, array: np.ndarray, name: str) -> None:
    """`node`'s input `index` becomes `array`: in place when nothing else reads it, else a new initializer
    (an exporter may share one weight between several layers)."""
    value = node.inputs[index]
    if len(value.uses()) == 1 and value.name in graph.initializers:
        value.const_value = ir.tensor(array, name=value.name)
    else:
        node.replace_input_with(index, add_initializer(graph, name, array))


DYNAMIC_PREPARATION: list[ir.passes.PassBase] = [
    SmoothLayerNormMatMul(),
    # The Mul it inserts follows its LayerNorm; emitters expect producers before consumers.
    TopologicalSortPass(),
]


def prepare_for_dynamic(model: ir.Model) -> ir.Model:
    """The IR every dynamic int8 target emits (onnx-dynamic, torch-dynamic): smoothed, on a copy."""
    from qconvert.passes.pipelines import run_pipeline

    return run_pipeline(copy_model(model), DYNAMIC_PREPARATION, "dynamic int8 preparation")

"""ONNX symbolics the TorchScript exporter lacks, for ops that traced TorchScript files contain.

A module traced in eval mode without gradients records the fast paths it took: nn.MultiheadAttention
becomes `aten::_native_multi_head_attention` (torchvision's ViT and Swin blocks, most traced
transformers), which torch.onnx's TorchScript exporter has no symbolic for. The file cannot be
re-traced without its Python code, so the op is spelled out here in standard ONNX ops.
"""

from __future__ import annotations

import math

OPSET = 17
_registered = False


def _native_multi_head_attention(g, query, key, value, embed_dim, num_heads, qkv_weight, qkv_bias,
                                 proj_weight, proj_bias, mask=None, need_weights=True,
                                 average_attn_weights=True, mask_type=None):
    """softmax(q kᵀ / √d) v per head, then the output projection; inputs batch-first [B, L, E]."""
    from torch.onnx import symbolic_helper as sym

    embed_dim = sym._get_const(embed_dim, "i", "embed_dim")
    num_heads = sym._get_const(num_heads, "i", "num_head")
    need_weights = sym._maybe_get_const(need_weights, "b")
    average = sym._maybe_get_const(average_attn_weights, "b")
    if mask is not None and not sym._is_none(mask):
        raise RuntimeError("aten::_native_multi_head_attention with a mask is not supported by qconvert's "
                           "symbolic; export the model from Python (file.py:factory or .pt2) instead")
    head = embed_dim // num_heads
    weights = g.op("Split", qkv_weight, g.op("Constant", value_t=_ints([embed_dim] * 3)), axis_i=0, outputs=3)
    biases = g.op("Split", qkv_bias, g.op("Constant", value_t=_ints([embed_dim] * 3)), axis_i=0, outputs=3)
    per_head = g.op("Constant", value_t=_ints([0, -1, num_heads, head]))

    def project(x, weight, bias):  # [B, L, E] -> [B, H, L, D]
        y = g.op("Add", g.op("MatMul", x, g.op("Transpose", weight, perm_i=[1, 0])), bias)
        return g.op("Transpose", g.op("Reshape", y, per_head), perm_i=[0, 2, 1, 3])

    q = project(query, weights[0], biases[0])
    k = project(key, weights[1], biases[1])
    v = project(value, weights[2], biases[2])
    scale = g.op("Constant", value_t=_float(1.0 / math.sqrt(head)))
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm_i=[0, 1, 3, 2])), scale)
    probs = g.op("Softmax", scores, axis_i=-1)
    context = g.op("Transpose", g.op("MatMul", probs, v), perm_i=[0, 2, 1, 3])
    context = g.op("Reshape", context, g.op("Constant", value_t=_ints([0, -1, embed_dim])))
    output = g.op("Add", g.op("MatMul", context, g.op("Transpose", proj_weight, perm_i=[1, 0])), proj_bias)
    if need_weights and average:
        probs = g.op("ReduceMean", probs, axes_i=[1], keepdims_i=0)
    return output, probs


def _ints(values):
    import torch

    return torch.tensor(values, dtype=torch.int64)


def _float(value):
    import torch

    return torch.tensor(value, dtype=torch.float32)


def register() -> None:
    """Register the symbolics once per process (torch.onnx keeps a global table)."""
    global _registered
    if _registered:
        return
    import torch

    torch.onnx.register_custom_op_symbolic("aten::_native_multi_head_attention", _native_multi_head_attention,
                                           OPSET)
    _registered = True

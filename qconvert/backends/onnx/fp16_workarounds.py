"""Rewrites of the fp16 ONNX file around onnxruntime faults; each keeps the computed function.

onnxruntime has no fp16 MatMul kernel on x86 CPUs: it inserts a Cast to fp32 before such a MatMul. When that
Cast's producer is a Transpose it cannot fold into the MatMul (a perm that moves the batch, as
`nn.MultiheadAttention`'s sequence-first layout does), its NchwcTransformer dereferences a null op and the
process dies at session creation, at the default optimization level (microsoft/onnxruntime#28392, still
in 1.31). A ViT's onnx-fp16 file crashed every default session that way.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def cast_before_transpose_into_matmul(model: onnx.ModelProto) -> int:
    """Run each fp16 `Transpose -> MatMul` in fp32: Cast before the Transpose, the MatMul's weight cast to
    fp32 (onnxruntime folds that at load, the file keeps its fp16 weight), and the result cast back. This
    is what onnxruntime computes anyway (fp32 MatMul), in an order it survives. Returns how many MatMuls
    changed."""
    graph = model.graph
    types = _fp16_values(model)
    producers = {out: node for node in graph.node for out in node.output}
    rewritten, changed = [], 0
    for node in graph.node:
        transpose = producers.get(node.input[0]) if node.op_type == "MatMul" else None
        if transpose is None or transpose.op_type != "Transpose" or node.input[0] not in types:
            rewritten.append(node)
            continue
        stem = node.name or node.output[0]
        source_fp32 = f"{stem}_transpose_input_fp32"
        transposed_fp32 = f"{stem}_a_fp32"
        weight_fp32 = f"{stem}_b_fp32"
        result_fp32 = f"{stem}_fp32"
        rewritten += [
            helper.make_node("Cast", [transpose.input[0]], [source_fp32], name=f"{stem}_cast_transpose_input",
                             to=TensorProto.FLOAT),
            helper.make_node("Transpose", [source_fp32], [transposed_fp32], name=f"{stem}_transpose_fp32",
                             perm=list(next(a.ints for a in transpose.attribute if a.name == "perm"))),
            helper.make_node("Cast", [node.input[1]], [weight_fp32], name=f"{stem}_cast_b", to=TensorProto.FLOAT),
            helper.make_node("MatMul", [transposed_fp32, weight_fp32], [result_fp32], name=f"{stem}_fp32"),
            helper.make_node("Cast", [result_fp32], [node.output[0]], name=f"{stem}_cast_result",
                             to=TensorProto.FLOAT16),
        ]
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(rewritten)
        _drop_unused(graph)
    return changed


def _fp16_values(model: onnx.ModelProto) -> set[str]:
    """Names of the values that are fp16, by ONNX's type inference (on a copy without the converter's stale
    value_info, which records some fp16 values as fp32)."""
    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    fresh.graph.ClearField("value_info")
    inferred = onnx.shape_inference.infer_shapes(fresh, strict_mode=False)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT16}


def _drop_unused(graph: onnx.GraphProto) -> None:
    """A Transpose whose only consumer was rewritten is left without one."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        kept = [node for node in graph.node if any(out in used for out in node.output)]
        if len(kept) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(kept)

"""Write the IR as .onnx files: as it is (fp32) or with fp16 weights and compute."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import onnx.numpy_helper
import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass

from qconvert.backends.onnx.fp16_workarounds import cast_before_transpose_into_matmul
from qconvert.backends.targets import EmitOptions

# Ops whose fp16 form loses accuracy (exp/log ranges, long reductions, normalisation statistics) or
# that onnxruntime runs in fp32 anyway: they stay fp32, with Casts around them.
FP16_KEEP_FP32 = [
    "Softmax", "LogSoftmax", "LayerNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare",
    "ReduceL2", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Range", "CumSum",
]


def emit_fp32(model: ir.Model, path: Path, options: EmitOptions = EmitOptions()) -> None:
    ir.save(model, path)


def emit_fp16(model: ir.Model, path: Path, options: EmitOptions = EmitOptions()) -> None:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    proto = ir.serde.serialize_model(model)
    half = convert_float_to_float16(
        proto,
        keep_io_types=True,  # callers keep feeding and reading fp32
        op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FP32)),
        disable_shape_infer=False,
    )
    _drop_repeated_nodes(half.graph)
    _store_raw(half.graph)
    # The converter appends its Casts after their consumers; onnxruntime tolerates it, the checker does not.
    sorted_model = ir.serde.deserialize_model(half)
    TopologicalSortPass()(sorted_model)
    half = ir.serde.serialize_model(sorted_model)
    cast_before_transpose_into_matmul(half)  # on the sorted graph: it reads inferred types
    # Its recorded intermediate types are partly stale (fp32 where the value is now fp16); runtimes infer them.
    half.graph.ClearField("value_info")
    onnx.checker.check_model(half, full_check=True)  # an invalid file is an emit error, never an artifact
    onnx.save(half, str(path))


def _drop_repeated_nodes(graph: onnx.GraphProto) -> None:
    """Keep one of the identical Casts the fp16 converter writes per use of a shared initializer.

    An initializer that feeds several ops kept in fp32 (one LayerNorm gain shared by every block, as
    exporters deduplicate equal weights) gets a Cast back to fp32 per use, all with one node name and
    one output name: an invalid graph. They compute the same value, so the first one stays.
    """
    seen: dict[str, onnx.NodeProto] = {}
    kept = []
    for node in graph.node:
        first = next((seen[o] for o in node.output if o in seen), None)
        if first is None:
            seen.update({o: node for o in node.output})
            kept.append(node)
        elif first.SerializeToString() != node.SerializeToString():
            raise ValueError(f"fp16 conversion wrote two different nodes for value {node.output[0]!r}")
    del graph.node[:]
    graph.node.extend(kept)


def _store_raw(graph: onnx.GraphProto) -> None:
    """The fp16 converter stores halves as int32_data varints (up to 3 bytes each); raw_data takes 2."""
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == onnx.TensorProto.FLOAT16 and not tensor.raw_data:
            graph.initializer[index].CopyFrom(
                onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor), tensor.name)
            )


def emit_qdq(model: ir.Model, path: Path, options: EmitOptions = EmitOptions()) -> dict:
    """The IR's static int8: `model` already holds the QDQ nodes (qconvert.passes.InsertQDQ); they are
    written in the form onnxruntime fuses into integer kernels, the same quantized function."""
    from qconvert.backends.onnx.qdq_lowering import lower_for_onnxruntime
    from qconvert.ir.metadata import get_meta

    from qconvert.backends.onnx.integer_check import float_compute_ops

    ir.save(lower_for_onnxruntime(model), path)
    # What onnxruntime runs in float, from its optimized graph: the layers mixed precision kept float,
    # and anything its fusions did not take.
    float_ops = [f"{op} {name}" for op, name in float_compute_ops(path)]
    return {"quantization": {**get_meta(model, "quantization", {}), "float_ops": float_ops}}


def emit_dynamic(model: ir.Model, path: Path, options: EmitOptions = EmitOptions()) -> dict:
    """Dynamic int8 for MatMul/Gemm: int8 weights per output channel (`--weight-granularity per-tensor`
    for one scale), activations quantized per batch at run time (onnxruntime's quantize_dynamic; its
    kernels fuse into DynamicQuantizeMatMul). The IR is the dynamic preparation's: LayerNorm outlier
    channels migrated into the weights (qconvert/passes/smooth_quant.py), the same IR torch-dynamic emits."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qconvert.ir.metadata import get_meta
    from qconvert.passes.smooth_quant import META_KEY, prepare_for_dynamic

    smoothed = prepare_for_dynamic(model)
    per_channel = options.quant.per_channel if options.quant else True
    proto = ir.serde.serialize_model(smoothed)
    # The quantizer re-infers shapes after rewriting Gemm weights; recorded intermediate shapes
    # (value_info) of the old weights then contradict it.
    proto.graph.ClearField("value_info")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice goes to the root logger
    try:
        quantize_dynamic(
            proto, path, op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
            weight_type=QuantType.QInt8,
            # A MatMul of two activations (attention scores) stays float: quantizing it per batch costs
            # more than it saves and hurts accuracy most.
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
    quantized = sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in onnx.load(str(path)).graph.node)
    return {"quantization": {
        "config": f"dynamic int8 MatMul/Gemm weights ({'per output channel' if per_channel else 'per tensor'})",
        "layers": quantized, "smoothed_layernorms": get_meta(smoothed, META_KEY, {})}}

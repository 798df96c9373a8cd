"""Which compute ops onnxruntime still runs in float, read from its optimized graph (not from the file).

onnxruntime fuses a DequantizeLinear → op → QuantizeLinear pattern into an integer kernel (QLinearConv,
QLinearMatMul, QGemm, QLinearAdd, QLinearMul...) only when every piece fits its selector; what does not fit
stays a float op between Dequantize/Quantize nodes, and the file alone does not tell which. The session
writes the graph it will run (SessionOptions.optimized_model_filepath, all optimizations on), and that
graph is what is checked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

# Float kernels of the ops that must run integer, under the names the optimizer gives them (a Conv
# becomes com.microsoft FusedConv or com.microsoft.nchwc Conv; a Gemm FusedGemm; a MatMul FusedMatMul).
FLOAT_KERNELS = {
    "Conv": "Conv", "FusedConv": "Conv", "ConvTranspose": "ConvTranspose",
    "Gemm": "Gemm", "FusedGemm": "Gemm",
    "MatMul": "MatMul", "FusedMatMul": "MatMul",
    "Add": "Add", "Mul": "Mul",
}


def optimized_graph(model: onnx.ModelProto | str | Path, threads: int = 1) -> onnx.ModelProto:
    """The graph onnxruntime's CPU provider runs, after every graph optimization."""
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def float_compute_ops(model: onnx.ModelProto | str | Path) -> list[tuple[str, str]]:
    """(op, node name) of every Conv, ConvTranspose, Gemm, MatMul, Add and Mul that onnxruntime runs on
    float tensors after optimization, in graph order. Ops on integer tensors (shape arithmetic) are not
    counted."""
    graph = optimized_graph(model).graph
    integer = _integer_values(graph)
    found = []
    for node in graph.node:
        op = FLOAT_KERNELS.get(node.op_type)
        if op is None or all(name in integer for name in node.input if name):
            continue
        found.append((op, node.name))
    return found


def _integer_values(graph: onnx.GraphProto) -> set[str]:
    """Names of values known to hold integers: integer initializers, and what Shape/Size/Gather/... of
    them computes (the optimizer keeps no types for intermediate values)."""
    integer = {t.name for t in graph.initializer
               if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)}
    integer |= {v.name for v in graph.input if v.type.tensor_type.elem_type not in (
        onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)}
    for node in graph.node:
        if node.op_type in ("Shape", "Size", "NonZero", "ArgMax", "ArgMin"):
            integer.update(node.output)
        elif node.op_type == "Cast" and any(
                a.name == "to" and a.i in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) for a in node.attribute):
            integer.update(node.output)
        elif node.op_type in ("Gather", "Concat", "Slice", "Unsqueeze", "Squeeze", "Add", "Mul", "Sub", "Div",
                              "Reshape", "Range", "Max", "Min") and node.input and all(
                name in integer for name in node.input if name):
            integer.update(node.output)
    return integer

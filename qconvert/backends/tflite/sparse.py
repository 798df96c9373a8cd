"""TFLite's sparse tensor encoding (the converter's Optimize.EXPERIMENTAL_SPARSITY), kept where it makes the
file smaller.

Pruned zeros shrink no dense file. With the flag the converter stores a constant weight with enough zeros
in TFLite's sparse format (per-row segments and column indices), and the runtime either reads it with a
sparse kernel or expands it with a DENSIFY op when the interpreter prepares: a smaller file, the same
weight in memory, and a slower load. Whether the encoding pays is
measured per file: both files are converted, the smaller is kept if LiteRT runs it, and `facts` say so: both
sizes, which was kept, why a smaller file was refused, and for a kept one the ops that densify at load, those
that compute on sparse weights, and its latency against the dense file's (latency_ratio), so a report can
show what it costs.

Measured (bench/tflite_sparse.py, the reference VGG at 80% global, one thread): float32 15.27 MB dense,
3.90 MB sparse; every weight densified at load (no sparse kernel): loading took 3.3x as long (120 ms against
36) and inference 1.04-1.06x (two runs, alternated). XNNPACK refuses the int8 and dynamic-range sparse files
(FULLY_CONNECTED, CONV_2D): those keep the dense file, and the facts say why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from qconvert.ir.layer_weights import LAYER_OPS

# Tried only on a model this share of whose layer weights are zero, i.e. pruned: rounding alone leaves
# a few percent of int8 codes at zero, and the second conversion would cost every unpruned model time.
PRUNED_SHARE = 0.1
RUNS, WARMUP = 30, 3  # latency_ratio's runs per file


def zero_share(model: ir.Model) -> float:
    """The share of zeros among the constant weights of the IR's layers, float or integer behind a
    DequantizeLinear."""
    zeros = total = 0
    for node in model.graph:
        if node.op_type not in LAYER_OPS or len(node.inputs) < 2:
            continue
        for value in node.inputs[:2]:
            producer = value.producer() if value is not None else None
            if producer is not None and producer.op_type == "DequantizeLinear":
                value = producer.inputs[0]
            if value is None or value.const_value is None or len(value.const_value.shape) < 2:
                continue
            array = value.const_value.numpy()
            zeros, total = zeros + array.size - int(np.count_nonzero(array)), total + array.size
    return zeros / total if total else 0.0


def sparse_layout(flatbuffer: bytes) -> dict:
    """How a .tflite holds sparse weights: tensors in the sparse format, the DENSIFY ops that expand them
    at load, and the other ops that read one directly (their kernels compute on it)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    sparse = {d["index"] for d in interpreter.get_tensor_details() if d.get("sparsity_parameters")}
    ops = interpreter._get_ops_details()
    densify = sum(op["op_name"] == "DENSIFY" for op in ops)
    kernels = sorted({op["op_name"] for op in ops if op["op_name"] != "DENSIFY" and sparse & set(op["inputs"])})
    return {"sparse_tensors": len(sparse), "densify_ops": densify, "sparse_kernels": kernels}


def _interpreter(flatbuffer: bytes):
    """LiteRT as the runner opens a file (its default XNNPACK delegate, one thread), inputs set to zeros."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    for detail in interpreter.get_input_details():
        interpreter.resize_tensor_input(detail["index"], [max(int(d), 1) for d in detail["shape_signature"]])
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter


def latency_ratio(dense: bytes, sparse: bytes) -> tuple[float | None, str | None]:
    """(sparse / dense median latency, None), or (None, why the sparse file does not run). One thread, the
    two files' runs alternated in this process, RUNS each after a warm-up: a side measurement for the
    facts, not the row's latency. XNNPACK refuses some sparse-encoded weights (int8 FULLY_CONNECTED)."""
    try:
        interpreters = [_interpreter(dense), _interpreter(sparse)]
    except (RuntimeError, ValueError) as error:
        return None, " ".join(str(error).split())
    times: list[list[float]] = [[], []]
    for index in range(RUNS + WARMUP):
        for side in ((0, 1) if index % 2 else (1, 0)):
            began = time.perf_counter()
            interpreters[side].invoke()
            if index >= WARMUP:
                times[side].append(time.perf_counter() - began)
    return float(np.median(times[1]) / np.median(times[0])), None


def smaller_encoding(model: ir.Model, convert: Callable[[bool], bytes]) -> tuple[bytes, dict | None]:
    """`convert(sparse)` once dense and, where `model` was pruned (PRUNED_SHARE), once sparse-encoded: the
    smaller file, and the facts of the choice (None when it was not tried)."""
    dense = convert(False)
    if zero_share(model) < PRUNED_SHARE:
        return dense, None
    sparse = convert(True)
    facts = {"dense_bytes": len(dense), "sparse_bytes": len(sparse)}
    if len(sparse) >= len(dense):
        return dense, {**facts, "kept": "dense"}
    ratio, refused = latency_ratio(dense, sparse)
    if refused is not None:  # smaller, but LiteRT cannot run it
        return dense, {**facts, "kept": "dense", "sparse_refused": refused}
    # kept for its size; a ratio above 1 is the inference time it costs, said here for the report
    return sparse, {**facts, "kept": "sparse", "latency_ratio": round(ratio, 3), **sparse_layout(sparse)}

"""TFLite's sparse tensor encoding (the converter's Optimize.EXPERIMENTAL_SPARSITY), kept where it makes the
file smaller.

Pruned zeros shrink no dense file. With the flag the converter stores a constant weight with enough zeros
in TFLite's sparse format (per-row segments and column indices), and the runtime either reads it with a
sparse kernel or expands it with a DENSIFY op when the interpreter prepares: a smaller file, the same
weight in memory, and the same kernels after loading for the densified ones. Whether the encoding pays is
measured per file: both files are converted, the smaller is kept if LiteRT runs it, and `facts` say so (both
sizes, which was kept, the ops that densify at load and those that compute on sparse weights, why a smaller
file was refused), so a report can show it.

Measured (bench/tflite_sparse.py, the reference VGG at 80% global, one thread): float32 15.27 MB dense,
3.90 MB sparse; every weight densified at load (no sparse kernel), so loading took 255 ms instead of 75 and
inference the same kernels. XNNPACK refuses the int8 and dynamic-range sparse files (FULLY_CONNECTED,
CONV_2D): those keep the dense file, and the facts say why.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from qconvert.ir.layer_weights import LAYER_OPS

# Tried only on a model this share of whose layer weights are zero, i.e. pruned: rounding alone leaves
# a few percent of int8 codes at zero, and the second conversion would cost every unpruned model time.
PRUNED_SHARE = 0.1


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


def why_not_runs(flatbuffer: bytes) -> str | None:
    """Why LiteRT, as the runner opens a file (its default XNNPACK delegate), cannot run it once on zeros;
    None when it can. XNNPACK refuses some sparse-encoded int8 FULLY_CONNECTED weights."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            shape = [max(int(d), 1) for d in detail["shape_signature"]]
            interpreter.resize_tensor_input(detail["index"], shape)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except (RuntimeError, ValueError) as error:
        return " ".join(str(error).split())
    return None


def smaller_encoding(model: ir.Model, convert: Callable[[bool], bytes]) -> tuple[bytes, dict | None]:
    """`convert(sparse)` once dense and, where `model` was pruned (PRUNED_SHARE), once sparse-encoded: the
    smaller file, and the facts of the choice (None when it was not tried)."""
    dense = convert(False)
    if zero_share(model) < PRUNED_SHARE:
        return dense, None
    sparse = convert(True)
    refused = why_not_runs(sparse) if len(sparse) < len(dense) else None
    kept = sparse if len(sparse) < len(dense) and refused is None else dense
    facts = {"dense_bytes": len(dense), "sparse_bytes": len(sparse), "kept": "sparse" if kept is sparse else "dense"}
    if refused is not None:
        facts["sparse_refused"] = refused  # smaller, but LiteRT cannot run it
    else:
        facts.update(sparse_layout(sparse))
    return kept, facts

"""QDQ IR graphs quantized by hand, independent of the quantization plan.

A test writes a float graph in ONNX text and says which tensors get a QuantizeLinear/DequantizeLinear
pair, which share one scale and which have a fixed scale; ``by_hand`` measures the ranges on random
inputs (onnxruntime, float graph) and writes the QDQ exactly as the plan places it:

- each listed activation: ``x -> QuantizeLinear -> DequantizeLinear -> every consumer of x``;
- Conv/Gemm/MatMul weights: DequantizeLinear of int8 constants, per output channel, symmetric;
- their bias: DequantizeLinear of int32 with scale s_in·s_w;
- other constants listed in ``constants`` (a PRelu slope, a Mul's per-channel factor): int8,
  symmetric, one scale per tensor.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from qconvert.quant.params import activation_params, quantize_bias, quantize_weight, weight_scales
from tests.passes.helpers import parse, run

WEIGHT_AXIS = {"Conv": 0, "Gemm": 0, "MatMul": 1}  # Gemm with transB=1 (ONNX exporters' form)


def ranges(model: ir.Model, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """min/max of each named value over the feeds (every value made a graph output for the run)."""
    proto = ir.serde.serialize_model(model)
    outputs = {o.name for o in proto.graph.output}
    for name in names:
        if name not in outputs and name not in feeds:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    got = dict(zip([o.name for o in proto.graph.output], run(proto, feeds)))
    got.update(feeds)
    return {name: (float(np.nanmin(got[name])), float(np.nanmax(got[name]))) for name in names}


def by_hand(text: str, activations: list[str], *, shared: list[list[str]] = (),
            fixed: dict[str, tuple[float, int]] | None = None, constants: list[str] = (),
            dtype: str = "int8", seed: int = 0, samples: int = 16) -> ir.Model:
    model = parse(text)
    graph = model.graph
    rng = np.random.default_rng(seed)
    feeds = {v.name: rng.standard_normal([samples if not isinstance(d, int) else d for d in v.shape])
             .astype(np.float32) for v in graph.inputs}
    measured = ranges(model, list(activations), feeds)
    for group in shared:  # one range for the group: the union
        lo, hi = min(measured[n][0] for n in group), max(measured[n][1] for n in group)
        measured.update({n: (lo, hi) for n in group})
    params = {n: activation_params(*measured[n], dtype) for n in activations}
    params.update(fixed or {})
    values = {v.name: v for v in graph.inputs}
    for node in graph:
        values.update({v.name: v for v in node.outputs})
    zp_type = {"int8": np.int8, "uint8": np.uint8}[dtype]
    for name in activations:
        scale, zero_point = params[name]
        _qdq(graph, values[name], np.float32(scale), np.array(zero_point, zp_type))
    for node in list(graph):
        if node.op_type in WEIGHT_AXIS and node.inputs[1].const_value is not None:
            _weight(graph, node, WEIGHT_AXIS[node.op_type], params[_quantized_source(node.inputs[0])][0])
        for index, value in enumerate(node.inputs):
            if value is not None and value.name in constants:
                node.replace_input_with(index, _constant(graph, value))
    graph.sort()
    proto = onnx.shape_inference.infer_shapes(ir.serde.serialize_model(model), strict_mode=True)
    onnx.checker.check_model(proto)
    return ir.serde.deserialize_model(proto)  # with every value's type, as the pipeline's IR


def _quantized_source(value: ir.Value) -> str:
    """The name of the activation a DequantizeLinear output stands for."""
    return value.producer().inputs[0].producer().inputs[0].name


def _init(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, const_value=ir.tensor(array), shape=ir.Shape(array.shape),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)))
    graph.register_initializer(value)
    return value


def _dq(graph: ir.Graph, name: str, q: np.ndarray, scale: np.ndarray, axis: int | None) -> ir.Value:
    inputs = [_init(graph, f"{name}_q", q), _init(graph, f"{name}_s", scale),
              _init(graph, f"{name}_zp", np.zeros(scale.shape, q.dtype))]
    node = ir.node("DequantizeLinear", inputs, {"axis": axis} if axis is not None else None,
                   name=f"{name}_dq")
    node.outputs[0].name = f"{name}_dequantized"
    node.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    node.outputs[0].shape = ir.Shape(q.shape)
    graph.insert_before(next(iter(graph)), node)
    return node.outputs[0]


def _qdq(graph: ir.Graph, x: ir.Value, scale: np.float32, zero_point: np.ndarray) -> None:
    s, zp = _init(graph, f"{x.name}_scale", np.array(scale)), _init(graph, f"{x.name}_zero_point", zero_point)
    quantize = ir.node("QuantizeLinear", [x, s, zp], name=f"{x.name}_q")
    quantize.outputs[0].name = f"{x.name}_quantized"
    quantize.outputs[0].type = ir.TensorType(ir.DataType.from_numpy(zero_point.dtype))
    dequantize = ir.node("DequantizeLinear", [quantize.outputs[0], s, zp], name=f"{x.name}_dq")
    out = dequantize.outputs[0]
    out.name, out.type, out.shape = f"{x.name}_dequantized", ir.TensorType(ir.DataType.FLOAT), x.shape
    was_output = x.is_graph_output()
    x.replace_all_uses_with(out, replace_graph_outputs=True)
    quantize.replace_input_with(0, x)
    producer = x.producer()
    if producer is not None:
        graph.insert_after(producer, [quantize, dequantize])
    else:
        graph.insert_before(next(iter(graph)), [quantize, dequantize])
    if was_output:  # the graph output keeps its name
        name = x.name
        x.name, out.name = f"{name}_float", name


def _weight(graph: ir.Graph, node: ir.Node, axis: int, input_scale: float) -> None:
    w = node.inputs[1].const_value.numpy().astype(np.float32)
    scales = weight_scales(w, axis)
    node.replace_input_with(1, _dq(graph, node.inputs[1].name, quantize_weight(w, scales, axis), scales, axis))
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        bq, bias_scale = quantize_bias(node.inputs[2].const_value.numpy(), np.float32(input_scale), scales)
        node.replace_input_with(2, _dq(graph, node.inputs[2].name, bq, bias_scale, 0))


def _constant(graph: ir.Graph, value: ir.Value) -> ir.Value:
    c = value.const_value.numpy().astype(np.float32)
    scale = weight_scales(c, None)
    return _dq(graph, value.name, quantize_weight(c, scale, None), scale.reshape(()), None)

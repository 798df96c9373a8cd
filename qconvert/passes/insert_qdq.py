"""Write static int8 quantization into the IR as QuantizeLinear/DequantizeLinear (QDQ) nodes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.metadata import set_meta
from qconvert.ir.values import add_initializer
from qconvert.quant.config import QuantConfig
from qconvert.quant.params import activation_params, quantize_bias, quantize_weight, weight_scales
from qconvert.quant.plan import FixedScale, Layer, find_layers, layer_name, plan_quantization

MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the axis attribute)


class InsertQDQ(ir.passes.InPlacePass):
    """Quantize the planned tensors (qconvert.quant.plan) with calibrated ranges.

    Before::

        y = Conv(x, W, B)
        z = Relu(y)
        p = MaxPool(z)

    After (W int8 per channel, B int32 with scale s_x·s_W; z and p share one scale and zero point)::

        xq = QuantizeLinear(x, s_x, zp_x)       x' = DequantizeLinear(xq, s_x, zp_x)
        W' = DequantizeLinear(Wq, s_W, 0, axis=0)
        B' = DequantizeLinear(Bq, s_x·s_W, 0, axis=0)
        y = Conv(x', W', B')
        z = Relu(y)                              (no QDQ between Conv and Relu: one unit)
        zq = QuantizeLinear(z, s_z, zp_z)        z' = DequantizeLinear(zq, s_z, zp_z)
        p = MaxPool(z')
        pq = QuantizeLinear(p, s_z, zp_z)        p' = DequantizeLinear(pq, s_z, zp_z)

    Scales and zero points are initializers named after the tensor (``<group>_scale``,
    ``<W>_scale``...), the single source of truth every int8 backend lowers. A group holding a
    Sigmoid, Softmax or Tanh output takes the plan's FIXED_OUTPUT scale instead of its calibrated
    range. A constant operand of Add/Mul and a PRelu slope become int8 like a weight, one scale for the
    tensor (a constant shared by several ops is quantized once). Graph inputs and outputs
    keep their names and float types. Layers named in ``exclude`` stay float (mixed precision); they are
    listed, with the configuration, in the model's ``qconvert.quantization`` metadata (qconvert.ir.metadata).
    """

    def __init__(self, *, ranges: dict[str, tuple[float, float]], config: QuantConfig,
                 exclude: frozenset[str] | set[str] = frozenset()):
        super().__init__()
        self.ranges, self.config, self.exclude = ranges, config, frozenset(exclude)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        opset = model.opset_imports.get("", 0)
        if opset < MIN_OPSET:
            raise ValueError(f"static int8 needs opset {MIN_OPSET} or later; the model has opset {opset}")
        graph = model.graph
        every_layer = {layer_name(layer.node) for layer in find_layers(graph)}
        plan = plan_quantization(graph, self.exclude)
        missing = [t.name for t in plan.tensors if t.name not in self.ranges]
        if missing:
            raise ValueError(f"no calibrated range for {', '.join(missing[:5])}")
        params = self._group_params(plan.group_members(), plan.fixed)
        group_values: dict[str, tuple[ir.Value, ir.Value]] = {}
        scale_of: dict[ir.Value, np.float32] = {}  # by value: a graph output's float tensor gets renamed
        for tensor in plan.tensors:
            group = plan.groups[tensor.name]
            if group not in group_values:
                scale, zero_point = params[group]
                group_values[group] = (
                    add_initializer(graph, f"{group}_scale", np.array(scale, dtype=np.float32)),
                    add_initializer(graph, f"{group}_zero_point",
                                 np.array(zero_point, dtype=self.config.activation_dtype)),
                )
            scale_of[tensor] = params[group][0]
            _insert_qdq(graph, tensor, *group_values[group])
        weights: dict[tuple[str, int | None], ir.Value] = {}  # one int8 copy of a constant shared by layers
        for layer in plan.layers:
            if layer.weight is not None:
                _quantize_weight_and_bias(graph, layer, scale_of.get(layer.inputs[0]), self.config, weights)
        graph.sort()
        set_meta(model, "quantization", {
            "config": self.config.describe(), "layers": len(plan.layers),
            "float_layers": sorted(self.exclude & every_layer),
        })
        return ir.passes.PassResult(model, modified=bool(plan.tensors or plan.layers))

    def _group_params(self, members: dict[str, list[str]], fixed: dict[str, FixedScale]
                      ) -> dict[str, tuple[np.float32, int]]:
        """One range per shared-scale group: the union of its members' ranges, or the fixed output scale
        of a Sigmoid/Softmax/Tanh in it (qconvert.quant.plan.FIXED_OUTPUT)."""
        params = {}
        for group, names in members.items():
            if group in fixed:
                params[group] = fixed[group].params(self.config.activation_dtype)
                continue
            lo = min(self.ranges[n][0] for n in names)
            hi = max(self.ranges[n][1] for n in names)
            params[group] = activation_params(lo, hi, self.config.activation_dtype,
                                              self.config.symmetric_activations)
        return params


def _dequantize(name: str, inputs: list[ir.Value], like: ir.Value, axis: int | None = None) -> ir.Node:
    node = ir.node("DequantizeLinear", inputs, {"axis": axis} if axis is not None else None,
                   name=f"{name}_DequantizeLinear")
    node.outputs[0].name = f"{name}_dequantized"
    node.outputs[0].type = ir.TensorType(ir.DataType.FLOAT)
    node.outputs[0].shape = like.shape
    return node


def _insert_qdq(graph: ir.Graph, x: ir.Value, scale: ir.Value, zero_point: ir.Value) -> None:
    quantize = ir.node("QuantizeLinear", [x, scale, zero_point], name=f"{x.name}_QuantizeLinear")
    quantize.outputs[0].name = f"{x.name}_quantized"
    quantize.outputs[0].type = zero_point.type
    quantize.outputs[0].shape = x.shape
    dequantize = _dequantize(x.name, [quantize.outputs[0], scale, zero_point], x)
    was_output = x.is_graph_output()
    x.replace_all_uses_with(dequantize.outputs[0], replace_graph_outputs=True)
    quantize.replace_input_with(0, x)
    producer = x.producer()
    if producer is not None:
        graph.insert_after(producer, [quantize, dequantize])
    else:  # a graph input
        first = next(iter(graph), None)
        graph.insert_before(first, [quantize, dequantize]) if first is not None else graph.extend(
            [quantize, dequantize])
    if was_output:  # the graph output keeps its name; the float tensor before it is renamed
        name = x.name
        x.name = f"{name}_float"
        dequantize.outputs[0].name = name


def _quantize_weight_and_bias(graph: ir.Graph, layer: Layer, input_scale: np.float32 | None,
                              config: QuantConfig, done: dict[tuple[str, int | None], ir.Value]) -> None:
    node, weight = layer.node, layer.weight
    w = weight.const_value.numpy().astype(np.float32)
    axis = layer.weight_axis if config.per_channel and w.ndim > 1 else None
    scales = weight_scales(w, axis)
    key = (weight.name, axis)
    if key not in done:
        q = add_initializer(graph, f"{weight.name}_quantized", quantize_weight(w, scales, axis))
        s = add_initializer(graph, f"{weight.name}_scale", scales if axis is not None else scales.reshape(()))
        zp = add_initializer(graph, f"{weight.name}_zero_point", np.zeros(s.shape.dims, dtype=np.int8))
        dq = _dequantize(f"{weight.name}_{axis}" if any(k[0] == weight.name for k in done) else weight.name,
                         [q, s, zp], weight, axis)
        graph.insert_before(node, dq)
        done[key] = dq.outputs[0]
    node.replace_input_with(layer.weight_index, done[key])
    _drop_if_unused(graph, weight)

    bias = layer.bias
    if bias is None or input_scale is None:
        return  # without an int8 input there is no int32 accumulator to add the bias to
    b = bias.const_value.numpy().astype(np.float32)
    if axis is not None and b.shape[0] != scales.shape[0]:
        return
    bq, bias_scale = quantize_bias(b, input_scale, scales)
    q = add_initializer(graph, f"{bias.name}_quantized", bq)
    s = add_initializer(graph, f"{bias.name}_scale", bias_scale if axis is not None else bias_scale.reshape(()))
    zp = add_initializer(graph, f"{bias.name}_zero_point", np.zeros(s.shape.dims, dtype=np.int32))
    dq = _dequantize(bias.name, [q, s, zp], bias, 0 if axis is not None else None)
    graph.insert_before(node, dq)
    node.replace_input_with(2, dq.outputs[0])
    _drop_if_unused(graph, bias)


def _drop_if_unused(graph: ir.Graph, value: ir.Value) -> None:
    if not list(value.uses()) and value.name in graph.initializers and not value.is_graph_output():
        graph.initializers.pop(value.name)

"""Write a trained program's Parameters back into a copy of the IR, by initializer name: the IR stays the
single source of truth, and every backend lowers the trained model as it lowers any other."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import copy_model
from qconvert.train.fake_quant import QuantizedProgram, bias_layer_scales, weight_range
from qconvert.train.program import TrainableProgram


def write_back(model: ir.Model, program: TrainableProgram) -> ir.Model:
    """A copy of `model` whose initializers hold the program's Parameter values (in their own dtypes)."""
    trained = copy_model(model)
    initializers = trained.graph.initializers
    for attr, name in program.parameters.items():
        value = initializers[name]
        array = program.module.get_parameter(attr).detach().cpu().numpy()
        old = value.const_value
        if tuple(array.shape) != tuple(old.shape.dims):
            raise ValueError(f"write-back: parameter {attr} has shape {list(array.shape)}, "
                             f"initializer {name!r} {list(old.shape.dims)}")
        value.const_value = ir.tensor(array.astype(old.dtype.numpy(), copy=True), name=name)
    return trained


def write_back_quantized(model: ir.Model, program: QuantizedProgram) -> ir.Model:
    """A copy of the QDQ IR `model` with the QAT program's values: its float initializers (the scales, the
    float layers' weights) as `write_back` writes them, then each integer weight requantized from its
    trained shadow with the scale the program used (capped as fake_quant.capped_weight_scale caps it,
    and written so), then each int32 bias from its shadow at s_x·s_w of the trained scales of its layer's
    input and weight (its scale initializer rewritten to match, as int8 kernels require)."""
    trained = write_back(model, program)
    initializers = trained.graph.initializers
    shadows = [(initializers[name], program.module.get_parameter(attr).detach().cpu().numpy().astype(np.float32))
               for attr, name in program.shadows.items()]
    for value, shadow in sorted(shadows, key=lambda item: item[0].const_value.dtype == ir.DataType.INT32):
        dequantize = next(node for node, index in value.uses() if node.op_type == "DequantizeLinear" and index == 0)
        dtype = value.const_value.dtype
        axis = dequantize.attributes["axis"].value if "axis" in dequantize.attributes else 1
        scale_value = dequantize.inputs[1]
        zero = dequantize.inputs[2].const_value.numpy() if len(dequantize.inputs) > 2 and \
            dequantize.inputs[2] is not None else np.zeros((), np.int64)
        low, high = weight_range(dtype, zero)
        if dtype == ir.DataType.INT32:
            scale = bias_scale(dequantize)
        else:
            scale = scale_value.const_value.numpy()
            if low == -high:
                scale = capped_scale(scale, shadow, axis, high)
        scale_value.const_value = ir.tensor(scale.reshape(scale_value.const_value.shape.dims).astype(np.float32),
                                            name=scale_value.name)
        codes = quantize_array(shadow, scale, zero, axis, low, high, wide=dtype == ir.DataType.INT32)
        value.const_value = ir.tensor(codes.astype(dtype.numpy()), name=value.name)
    return trained


def capped_scale(scale: np.ndarray, weight: np.ndarray, axis: int, qmax: int) -> np.ndarray:
    """fake_quant.capped_weight_scale in NumPy (float32, as torch computes it)."""
    flat = np.asarray(scale, np.float32).reshape(-1)
    if flat.size == 1:
        largest = np.abs(weight).max(initial=0).reshape(1).astype(np.float32)
    else:
        largest = np.abs(np.moveaxis(weight, axis % weight.ndim, 0)).reshape(flat.size, -1).max(axis=1)
    cap = np.where(largest > 0, largest.astype(np.float32) / np.float32(qmax), flat)
    return np.minimum(flat, cap).astype(np.float32).reshape(np.shape(scale))


def quantize_array(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, low: int, high: int,
                   wide: bool = False) -> np.ndarray:
    """clamp(round(x / s) + z), rounding half to even as QuantizeLinear does, per tensor or along `axis`;
    in float32 as qconvert.quant.params quantizes weights, or (`wide`) in float64 as it quantizes biases."""
    shape = [1] * x.ndim
    if np.ndim(scale) and x.ndim:
        shape[axis % x.ndim] = np.size(scale)
    dtype = np.float64 if wide else np.float32
    s = np.reshape(scale, shape if np.ndim(scale) else ()).astype(dtype)
    z = np.reshape(zero, shape if np.ndim(zero) else ()).astype(dtype)
    return np.clip(np.round(x.astype(dtype) / s) + z, low, high)


def bias_scale(dequantize: ir.Node) -> np.ndarray:
    """s_x·s_w, in float32 as qconvert.quant.params computes it."""
    sx, sw = (dq.inputs[1].const_value.numpy().astype(np.float32) for dq in bias_layer_scales(dequantize))
    return (sx * sw).astype(np.float32)

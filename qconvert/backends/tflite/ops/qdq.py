"""QuantizeLinear/DequantizeLinear as TensorFlow fake-quant ops carrying the IR's exact ranges.

An activation pair ``x' = DequantizeLinear(QuantizeLinear(x, s, zp), s, zp)`` becomes one
``fake_quant_with_min_max_vars(x, min, max)`` with ``[min, max] = [(qmin - zp)·s, (qmax - zp)·s]``, so
the 256 levels of the fake-quant op are exactly the IR's grid (zero is a level: zp is an integer, TF's
nudging leaves the range as it is). The TFLite converter turns each fake-quant op into the tensor's
scale and zero point (qconvert.backends.tflite.quantized). DequantizeLinear of a constant (the IR's int8
weights and int32 bias) is folded to float by the emitter before it gets here; the converter re-derives
the same per-channel weight scale from those values (the largest |w'| of each channel is 127·s). A weight
the IR quantizes per tensor has no such channel maximum, so the conv emitters (ops/conv.py) put it through
a narrow-range fake-quant op on ±127·s, which the converter takes as its one scale.

A QuantizeLinear that the int8 lowering marks with ``ARRANGEMENT`` = "ir" (qconvert.backends.tflite.
int8_lowering) materializes its tensor in the IR's arrangement instead of as held, so that a kernel
working on the last axis (SOFTMAX after a Transpose) finds its axis last.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from qconvert.backends.tflite.context import EmitContext
from qconvert.backends.tflite.int8_lowering import ARRANGEMENT
from qconvert.backends.tflite.registry import emits

LEVELS = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def fake_quant_range(scale: float, zero_point: int, dtype) -> tuple[float, float]:
    """The [min, max] of a fake-quant op whose levels are the IR's (scale, zero point) grid."""
    qmin, qmax = LEVELS[np.dtype(dtype)]
    return (qmin - int(zero_point)) * float(scale), (qmax - int(zero_point)) * float(scale)


def _params(ctx: EmitContext) -> tuple[float, int, np.dtype]:
    scale = np.asarray(ctx.const(1, "scale"))
    if scale.size != 1:
        raise ctx.unsupported("per-channel scale on an activation")
    zero_point = np.asarray(ctx.const(2, "zero point")) if ctx.has_input(2) else np.zeros((), np.uint8)
    dtype = ctx.node.inputs[2].dtype.numpy() if ctx.has_input(2) else np.dtype(np.uint8)
    if np.dtype(dtype) not in LEVELS:
        raise ctx.unsupported(f"{np.dtype(dtype).name} levels")
    return float(scale.reshape(())), int(zero_point.reshape(())), np.dtype(dtype)


@emits("QuantizeLinear")
def quantize_linear(ctx: EmitContext) -> None:
    """The fake-quant op; its float output stands for the int8 value until its DequantizeLinear."""
    if ctx.held(0).is_const:
        raise ctx.unsupported("quantizing a constant (the IR stores quantized weights)")
    low, high = fake_quant_range(*_params(ctx))
    in_ir_arrangement = ctx.node.metadata_props.get(ARRANGEMENT) == "ir"
    x = ctx.plain(0) if in_ir_arrangement else ctx.tensor(0)
    ctx.set(tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=False),
            None if in_ir_arrangement else ctx.perm(0))


@emits("DequantizeLinear")
def dequantize_linear(ctx: EmitContext) -> None:
    """After a QuantizeLinear (a fake-quant op already): the same tensor."""
    producer = ctx.node.inputs[0].producer()
    if producer is None or producer.op_type != "QuantizeLinear":
        raise ctx.unsupported("DequantizeLinear of a computed value not made by QuantizeLinear")
    ctx.set(ctx.tensor(0), ctx.perm(0))

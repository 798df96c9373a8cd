"""The QDQ IR as a quantization-aware training program: every QuantizeLinear/DequantizeLinear pair is an LSQ
fake-quant (Esser et al. 2020, "Learned Step Size Quantization") whose scale is a Parameter, initialised
from calibration.

- An activation's QuantizeLinear -> DequantizeLinear is one fake-quant of the float tensor; the DQ then
  passes it on. Its scale initializer is one Parameter however many pairs read it, so a shared-scale group
  (Concat, MaxPool, Resize... qconvert.quant.plan) stays shared. A scale that the plan fixes (a Sigmoid,
  Softmax or Tanh output, plan.FIXED_OUTPUT) is never trained. The scale of a bounded op's output (a
  HardSigmoid's [0, 1], a Clip's [min, max]) trains up to where its grid reaches the bound and no further
  (scale_caps): codes past it would never be used, and TFLite's integer HardSigmoid (int8_lowering) needs
  the grid to end at 1.
- An integer weight's DequantizeLinear is a fake-quant of a float Parameter that stands for the integer
  initializer (a *shadow*, Builder.shadows), initialised from the float IR's weight where one matches,
  else from the dequantized integers. Its scales (per channel or per tensor, as the IR has them) train.
- An int32 bias's DequantizeLinear is its float shadow rounded to its grid s_x·s_w, the live scales of its
  layer's input and weight; the write-back (writeback.write_back_quantized) requantizes it the same way.
- Zero points stay as calibrated.

The gradient scale is LSQ's, g = 1/√(N·Q_P): N the elements one scale covers (a weight's channel; an
activation's features per sample), Q_P the positive levels (127 for narrow-range int8 weights, 255 for an
activation's 256 codes). It balances the scales' gradients against the weights' under SGD; the training
loop's Adam normalises each parameter's steps, so there it only scales where Adam's epsilon matters.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import onnx_ir as ir
import torch
from torch import Tensor

from qconvert.backends.torch.ops.qdq import RANGES
from qconvert.backends.torch.program import build
from qconvert.ir import fold_factors
from qconvert.ir.values import constant_array
from qconvert.quant.params import WEIGHT_QMAX
from qconvert.quant.plan import FIXED_OUTPUT
from qconvert.train.program import TrainableProgram, is_weight

QAT_TARGET = "qat"


def lsq_grad_scale(count: int, positive_levels: int) -> float:
    """LSQ's g = 1/√(N·Q_P)."""
    return 1.0 / math.sqrt(max(count, 1) * max(positive_levels, 1))


def lsq_fake_quantize(x: Tensor, scale: Tensor, zero: Tensor, axis: int, low: int, high: int,
                      grad_scale: float | None) -> Tensor:
    """(clamp(round(x/s) + z, low, high) - z)·s, with the straight-through estimator for round: gradient
    1 to x inside the range and 0 outside; to s, round(x/s) - x/s inside and low - z or high - z outside,
    times the gradient scale. `grad_scale` None: an activation's, from its features per sample.

    torch's fused LSQ kernels compute it (a third of the time of the same formula in separate ops); they
    also give the zero point a gradient, which nothing reads: zero points are buffers. A per-tensor
    fake-quant over its dtype's whole range runs forward through torch's vectorised quantizer
    (_PerTensorFakeQuantize)."""
    if grad_scale is None:
        grad_scale = lsq_grad_scale(x[0].numel() if x.dim() > 0 else 1, high - low)
    x = x.to(torch.float32)
    if scale.numel() == 1:
        scale, zero = scale.reshape(1), zero.reshape(1).to(torch.float32)
        if (low, high) in QUANTIZED_DTYPES and x.device.type == "cpu":
            return _PerTensorFakeQuantize.apply(x, scale, zero, low, high, grad_scale)
        return torch._fake_quantize_learnable_per_tensor_affine(x, scale, zero, low, high, grad_scale)
    return torch._fake_quantize_learnable_per_channel_affine(
        x, scale.reshape(-1), zero.reshape(-1).to(torch.float32), axis % x.dim(), low, high, grad_scale)


# torch's quantized dtypes by their code range
QUANTIZED_DTYPES = {(0, 255): torch.quint8, (-128, 127): torch.qint8}


class _PerTensorFakeQuantize(torch.autograd.Function):
    """torch._fake_quantize_learnable_per_tensor_affine with its forward as quantize_per_tensor then
    dequantize: torch's quantizer is vectorised where the fused kernel's forward is not, and the
    activations' fake-quants were a quarter of a UNet QAT step's CPU time. The two round differently on a
    few values in a million, one step apart (ties of x/s, taken as x·(1/s) or x/s). The backward is the
    fused kernel's own: a formula in separate ops took twice its time."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, zero: Tensor, low: int, high: int, grad_scale: float) -> Tensor:
        ctx.save_for_backward(x, scale, zero)
        ctx.low, ctx.high, ctx.grad_scale = low, high, grad_scale
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.quantize_per_tensor")  # deprecated, not gone
            quantized = torch.quantize_per_tensor(x, float(scale), int(zero), QUANTIZED_DTYPES[(low, high)])
        return quantized.dequantize()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale, zero = ctx.saved_tensors
        grad_x, grad_scale, _ = torch.ops.aten._fake_quantize_learnable_per_tensor_affine_backward(
            grad.contiguous(), x, scale, zero, ctx.low, ctx.high, ctx.grad_scale)
        return grad_x, grad_scale, None, None, None, None


def weight_range(dtype: ir.DataType, zero: np.ndarray) -> tuple[int, int]:
    """The codes a trained integer weight may take: int8 with zero point 0 keeps the narrow range that
    qconvert.quant.params gives every weight (TFLite requires it), anything else its dtype's range."""
    if dtype == ir.DataType.INT8 and not np.any(zero):
        return -WEIGHT_QMAX, WEIGHT_QMAX
    return RANGES[dtype]


def fixed_scales(model: ir.Model) -> set[str]:
    """Scale initializers the plan fixes: those of a QuantizeLinear of a FIXED_OUTPUT op's output (the
    whole shared group reads the same initializer)."""
    fixed = set()
    for node in model.graph:
        if node.op_type != "QuantizeLinear" or len(node.inputs) < 2:
            continue
        producer = node.inputs[0].producer()
        if producer is not None and producer.op_type in FIXED_OUTPUT:
            fixed.add(node.inputs[1].name)
    return fixed


def output_bounds(node: ir.Node | None) -> tuple[float, float] | None:
    """The interval a bounded op's output stays in, else None: HardSigmoid [0, 1], a Clip's constant bounds."""
    if node is None:
        return None
    if node.op_type == "HardSigmoid":
        return 0.0, 1.0
    if node.op_type == "Clip" and len(node.inputs) >= 3:
        low, high = (constant_array(v) for v in node.inputs[1:3])
        if low is not None and high is not None:
            return float(np.asarray(low).reshape(())), float(np.asarray(high).reshape(()))
    return None


def scale_caps(model: ir.Model) -> dict[str, float]:
    """Activation scale initializer -> the scale above which its grid [(qmin - z)·s, (qmax - z)·s] reaches
    past both of its op's bounds (output_bounds), where no code it adds could ever be used. Only scales
    that every QuantizeLinear reading them takes from a bounded op (a shared group with one unbounded
    member has no cap)."""
    caps: dict[str, float] = {}
    uncapped: set[str] = set()
    for node in model.graph:
        if node.op_type != "QuantizeLinear" or len(node.inputs) < 2 or node.inputs[1] is None:
            continue
        name, bounds = node.inputs[1].name, output_bounds(node.inputs[0].producer())
        zero = constant_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        dtype = node.inputs[2].dtype if zero is not None else ir.DataType.UINT8
        if bounds is None or dtype not in RANGES or (zero is not None and np.asarray(zero).size != 1):
            uncapped.add(name)
            continue
        (low, high), (qmin, qmax) = bounds, RANGES[dtype]
        z = int(np.asarray(zero).reshape(())) if zero is not None else 0
        sides = []
        if high > 0 and qmax > z:
            sides.append(high / (qmax - z))
        if low < 0 and qmin < z:
            sides.append(low / (qmin - z))
        if not sides:
            uncapped.add(name)
            continue
        caps[name] = max(caps.get(name, 0.0), max(sides))
    return {name: cap for name, cap in caps.items() if name not in uncapped}


def _zero(b, node: ir.Node, dtype: ir.DataType):
    if b.has(node, 2):
        return b.input(node, 2)
    return b.buffer(f"{b.unique(node.name or 'q')}_zero", torch.zeros((), dtype=torch.int32))


def _int_const(b, node: ir.Node, index: int) -> np.ndarray:
    return np.asarray(b.const(node.inputs[index])) if b.has(node, index) else np.zeros((), np.int64)


def _shadow(b, value: ir.Value, initial: np.ndarray):
    """The float Parameter standing for integer initializer `value`, one however often it is read."""
    key = f"{value.name}:shadow"
    if key not in b._buffers:
        attr = b.unique(f"{value.name}_float")
        b.root.register_parameter(attr, torch.nn.Parameter(torch.from_numpy(initial.astype(np.float32))))
        b.shadows[attr] = value.name
        b._buffers[key] = b.graph.get_attr(attr)
    return b._buffers[key]


def float_name(quantized: str) -> str:
    """The float IR's name of the weight that qconvert.quant.static quantized into initializer `quantized`."""
    return quantized.removesuffix("_quantized")


def _float_value(float_weights: dict[str, np.ndarray], quantized: ir.Value, array: np.ndarray, scale: np.ndarray,
                 zero: np.ndarray, axis: int) -> np.ndarray:
    """A shadow's first value: the float IR's own weight when one of the same name and shape lies within
    half a step of the integers (it is what they were rounded from), else the dequantized integers."""
    shape = [1] * array.ndim
    if scale.ndim and array.ndim:
        shape[axis % array.ndim] = scale.size
    s, z = scale.reshape(shape if scale.ndim else ()), zero.reshape(shape if zero.ndim else ())
    dequantized = ((array.astype(np.float32) - z) * s).astype(np.float32)
    original = float_weights.get(float_name(quantized.name))
    if original is not None and original.shape == array.shape and \
            np.all(np.abs(original - dequantized) <= 0.5001 * np.abs(s) + 1e-12):
        return original.astype(np.float32)
    return dequantized


def quantize_linear(b, node: ir.Node):
    """An activation's (or a float constant's) fake-quant; the DequantizeLinear after it passes it on."""
    for consumer in node.outputs[0].consumers():
        if consumer.op_type != "DequantizeLinear" or consumer.inputs[1] is not node.inputs[1]:
            raise b.unsupported(node, "training needs every QuantizeLinear read by a DequantizeLinear of its "
                                      "own scale")
    if b.is_output(node.outputs[0]):
        raise b.unsupported(node, "training cannot give an integer graph output")
    dtype = b.dtype(node.inputs[2]) if b.has(node, 2) else ir.DataType(
        b.attr(node, "output_dtype", 0) or ir.DataType.UINT8)
    if dtype not in RANGES or int(b.attr(node, "block_size", 0)):
        raise b.unsupported(node, f"fake-quantizing to {getattr(dtype, 'name', dtype)} blocks")
    low, high = RANGES[dtype]
    return b.call(lsq_fake_quantize, b.input(node, 0), b.input(node, 1), _zero(b, node, dtype),
                  int(b.attr(node, "axis", 1)), low, high, None)


def dequantize_linear(b, node: ir.Node, float_weights: dict[str, np.ndarray]):
    source = node.inputs[0]
    producer = source.producer()
    if producer is not None and producer.op_type == "QuantizeLinear":
        return b.held(source)  # already the fake-quantized float tensor
    array, scale = b.const(source), b.const(node.inputs[1])
    dtype = b.dtype(source)
    if array is None or scale is None or dtype not in RANGES or int(b.attr(node, "block_size", 0)):
        raise b.unsupported(node, "training dequantizes integer initializers (with constant scales) and "
                                  "QuantizeLinear outputs only")
    shadow = _shadow_of(b, node, float_weights)
    if dtype == ir.DataType.INT32:
        return _bias(b, node, shadow, float_weights)
    zero, axis = _int_const(b, node, 2), int(b.attr(node, "axis", 1))
    low, high = weight_range(dtype, zero)
    per_scale = array.size // max(np.size(scale), 1)
    return b.call(lsq_fake_quantize, shadow, _weight_scale(b, node, float_weights), _zero(b, node, dtype), axis,
                  low, high, lsq_grad_scale(per_scale, high))


def _shadow_of(b, dequantize: ir.Node, float_weights: dict[str, np.ndarray]):
    source = dequantize.inputs[0]
    if f"{source.name}:shadow" in b._buffers:
        return b._buffers[f"{source.name}:shadow"]
    scale, zero = np.asarray(b.const(dequantize.inputs[1])), _int_const(b, dequantize, 2)
    initial = _float_value(float_weights, source, b.const(source), scale, zero, int(b.attr(dequantize, "axis", 1)))
    return _shadow(b, source, initial)


def capped_weight_scale(scale: Tensor, weight: Tensor, axis: int, qmax: int) -> Tensor:
    """min(s, max|w| / qmax) per channel (or per tensor): the largest weight's code is then ±qmax, as the
    TFLite converter requires, since it re-derives each channel's scale from its largest weight. A
    channel of zeros keeps s."""
    flat = scale.reshape(-1)
    if flat.numel() == 1:
        largest = weight.detach().abs().amax().reshape(1) if weight.numel() else flat
    else:
        largest = weight.abs().transpose(0, axis % weight.dim()).reshape(flat.numel(), -1).amax(1)
    cap = torch.where(largest > 0, largest / qmax, flat)
    return torch.minimum(flat, cap).reshape(scale.shape)


def _weight_scale(b, dequantize: ir.Node, float_weights: dict[str, np.ndarray]):
    """The scale a weight is fake-quantized with: its trained scale, capped (capped_weight_scale) for
    narrow-range int8 weights; one fx node per weight, which its layer's bias grid reads too."""
    key = f"{dequantize.name}:scale"
    if key not in b._buffers:
        scale = b.input(dequantize, 1)
        low, high = weight_range(b.dtype(dequantize.inputs[0]), _int_const(b, dequantize, 2))
        if low == -high:
            scale = b.call(capped_weight_scale, scale, _shadow_of(b, dequantize, float_weights),
                           int(b.attr(dequantize, "axis", 1)), high)
        b._buffers[key] = scale
    return b._buffers[key]


def round_to_grid(x: Tensor, step: Tensor) -> Tensor:
    """x on the grid of `step` (no gradient to the step), with the straight-through estimator for round."""
    step = step.detach()
    v = x / step
    return (v + (torch.round(v) - v).detach()) * step


def bias_layer_scales(dequantize: ir.Node) -> tuple[ir.Node, ir.Node]:
    """The DequantizeLinears of the input and weight (inputs 0 and 1) of the layer that adds this int32
    bias: its scale is the product of theirs."""
    layer = next(node for node, _ in dequantize.outputs[0].uses())
    producers = tuple(layer.inputs[i].producer() for i in (0, 1))
    if any(p is None or p.op_type != "DequantizeLinear" for p in producers):
        raise ValueError(f"the int32 bias of {layer.name} is not added to quantized inputs")
    return producers


def _bias(b, node: ir.Node, shadow, float_weights: dict[str, np.ndarray]):
    """An int32 bias on its grid s_x·s_w, the live scales of its layer's input and weight, as the int8
    kernels add it; write-back requantizes it from the trained scales."""
    activation, weight = bias_layer_scales(node)
    step = b.call(torch.mul, b.input(activation, 1), _weight_scale(b, weight, float_weights))
    return b.call(round_to_grid, shadow, step)


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
SCALE_STEP = 10.0  # see QuantizedProgram.parameter_groups
MIN_SCALE_RATIO = 1e-3


@dataclass
class QuantizedProgram(TrainableProgram):
    shadows: dict[str, str] = field(default_factory=dict)  # module attribute -> integer initializer
    fixed: set[str] = field(default_factory=set)  # scale initializers kept as they are
    scales: dict[str, float] = field(default_factory=dict)  # trained scale attribute -> its initial mean
    caps: dict[str, float] = field(default_factory=dict)  # trained scale attribute -> its largest (scale_caps)

    def parameter_groups(self, lr: float) -> list[dict]:
        """Each trained scale in a group of its own at SCALE_STEP·lr·(its initial mean), the rest at lr.
        Adam's step is about the group's lr in absolute terms; scales range from 1e-4 (a weight's) to 1
        (an activation's), so a step of lr would be a change by orders of magnitude for some and nothing for
        others. Relative to its value, a scale then moves as a weight of magnitude 1/SCALE_STEP does."""
        scales = {attr: self.module.get_parameter(attr) for attr in self.scales}
        others = [p for p in self.trainable() if all(p is not s for s in scales.values())]
        return [{"params": others, "lr": lr}] + [
            {"params": [parameter], "lr": lr * SCALE_STEP * self.scales[attr]} for attr, parameter in scales.items()]

    def constrain(self) -> None:
        """Scales stay positive (at least MIN_SCALE_RATIO of their initial value) and within their caps."""
        with torch.no_grad():
            for attr, initial in self.scales.items():
                self.module.get_parameter(attr).clamp_(min=initial * MIN_SCALE_RATIO, max=self.caps.get(attr))


def qat_program(model: ir.Model, float_model: ir.Model | None = None, batch_statistics: bool = False
                ) -> QuantizedProgram:
    """The QDQ IR (as qconvert.quant.static writes it) as a QAT program in train mode, on the CPU.
    `float_model`: the float IR it was quantized from (after qconvert.passes.prepare_for_int8), whose
    weights start the shadows. `batch_statistics`: Conv-rectifier layers train with a BatchNorm of their
    own (qconvert/train/batchnorm.py; its statistics start at batchnorm.estimate_statistics)."""
    float_weights = {} if float_model is None else {
        name: value.const_value.numpy() for name, value in float_model.graph.initializers.items()
        if value.const_value is not None and value.const_value.numpy().dtype.kind == "f"}
    emitters = {"QuantizeLinear": quantize_linear,
                "DequantizeLinear": partial(dequantize_linear, float_weights=float_weights)}
    if batch_statistics:
        from qconvert.train.batchnorm import quantized_conv_with_batchnorm

        # only where a BatchNorm was folded (its γ is recorded): QAT adds none to a conv that had none
        batchnorms = set(fold_factors.gammas(float_model.graph)) if float_model is not None else set()
        emitters["Conv"] = partial(quantized_conv_with_batchnorm, float_weights=float_weights, batchnorms=batchnorms)
    module, builder, inputs, outputs = build(model, mode="train", target=QAT_TARGET, emitters=emitters)
    if batch_statistics:
        module.graph.eliminate_dead_code()  # the weight and bias fake-quants a ConvBatchNorm computes itself
        module.recompile()
    fixed, initializers, scales, caps = fixed_scales(model), model.graph.initializers, {}, {}
    bounded = scale_caps(model)
    for attr, name in builder.parameters.items():
        value, parameter = initializers[name], module.get_parameter(attr)
        scale = any(node.op_type in QDQ_OPS and index == 1 for node, index in value.uses())
        parameter.requires_grad_(name not in fixed if scale else is_weight(value))
        if scale and name not in fixed:
            scales[attr] = float(parameter.detach().abs().mean())
            if name in bounded:
                caps[attr] = bounded[name]
    folds = fold_factors.factors(float_model.graph) if float_model is not None else {}
    unfolds = {attr: folds[float_name(name)] for attr, name in builder.shadows.items() if float_name(name) in folds}
    return QuantizedProgram(module, dict(builder.parameters), [p.name for p in inputs], [p.name for p in outputs],
                            unfolds, dict(builder.shadows), fixed, scales, caps)


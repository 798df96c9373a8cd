"""BatchNorm statistics for training a folded IR: each Conv that feeds a rectifier (the Conv-BatchNorm-ReLU
block whose BatchNorm the cleaned IR has folded into it) trains with a BatchNorm of its own whose batch
statistics normalise its output, and which is folded back into the conv's weight and bias afterwards
(Jacob et al. 2018, Krishnamoorthi 2018; torch.ao's ConvBn QAT modules do the same). ConvBatchNorm is the
float layer of fine-tuning, QuantizedConvBatchNorm QAT's, with fq the weight's fake-quant:

    training:   y = BN_batch(conv(x, fq(W·k)) / k + b),       k = γ / √(running var + ε)
    inference:  y = conv(x, fq(W·k)) + grid(b·k + β - running mean·k)

W and b are the layer's float weight and bias (in QAT their shadows, fake_quant.py); the weight's trained
scale is the folded weight's own, so the fake-quantized weights are exactly the ones written back.

The layer trains in the units its source trained it in. Where the IR records what folding a BatchNorm
multiplied the weight by (qconvert/ir/fold_factors.py: γ/√(var + ε) per output channel), W and b start
divided by c, that factor rounded to a power of two, and γ and β start c times the measured spread and
mean, which is where the source's own γ and β stood. Adam's step is about the learning rate per parameter
whatever the parameter's size, so in the folded units the source's BatchNorm scale sets each layer's
effective rate: on the Keras UNet c runs from 9 (the first conv) to 0.34 (the bottleneck), and training
folded weights moved the first layer 9x slower and the bottleneck 3x faster than the source's own training
(and tfmot's, which keeps the BatchNorm) at the same rate. ε, too, is then the source's: it applies to the
unfolded variance, the folded one divided by c². Powers of two keep the start
exact: running statistics come from one pass over the training inputs with γ = c·√(var + ε) and
β = c·mean, so k is exactly c and β - mean·k exactly 0, the program starts as the IR and an untrained one
folds back bit-identical. Without a recorded fold, c is 1. During training the statistics follow the
batches (momentum MOMENTUM); `fold` writes γ, β and the statistics into the weight and bias. Pruned
weights stay zero: the fold scales each output channel's weights, and the masks (masks.py) hold W itself.

A pruned model starts otherwise (estimate_statistics' `reference`, the unpruned model): each layer takes the
unpruned layer's γ and β, so its channels start at the mean and spread they had before pruning, as torch's
own BatchNorm, kept live through pruning and fine-tuning, starts them.

Fine-tuning (loop.finetune) trains this way by default. The reference VGG (bench/PRUNE.md's data: 1,438
training digits, 3 epochs, batch 32, Adam 1e-4, the last epoch's top-1 on 359 samples, float 98.61): global
40% 97.77 folded, 99.16 with batch statistics; global 80% 98.89, 99.16; layer-wise 80% 95.54, 98.61
(88.02 with γ and β from the pruned model itself: the damaged channels then have to be trained back at
1e-4). The tiny VGG of the tests, same data: unpruned 98.33 folded, 99.16 (from 90.53); global 40% 97.77,
98.89; global 60% 92.76, 97.77 (94.99 without the reference); layer-wise 60% 86.63, 93.31 (80.50 without).
Channel pruning of the reference VGG to 50%, 12 epochs (last epoch): 98.89 at 1e-4 and 98.33 at 1e-3
(folded: 97.49 at 1e-3 here, after three epochs near ln 10 loss; bench/PRUNE.md's folded run collapsed).
A training step takes longer (the extra normalisation: bench/QAT.md measures a UNet QAT epoch).

QAT trains this way too by default (quantization_aware's batch_statistics), as tfmot's quantize_model keeps
the Keras BatchNorm live: on the Keras UNet of bench/QAT.md it is what brings the tflite-int8 Dice up to
tfmot's (training folded, and under batch statistics in folded units, both stayed below it when tried).

A Conv feeding anything else (a Sigmoid output, a residual Add), ConvTranspose and Gemm train as before, and
so, in QAT, does a Conv the IR records no folded BatchNorm for (fine-tuning gives every Conv-rectifier one).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import torch
import torch.nn.functional as F
from torch import Tensor

from qconvert.backends.torch.ops.conv import CONV, _weight_shape, conv_geometry
from qconvert.backends.torch.ops.conv import conv as float_conv
from qconvert.train.fake_quant import (_shadow_of, _zero, _int_const, capped_weight_scale, float_name,
                                       lsq_fake_quantize, lsq_grad_scale, round_to_grid, weight_range)

RECTIFIERS = {"Relu", "Clip", "LeakyRelu", "HardSwish"}
MOMENTUM = 0.1  # torch's default; Keras's 0.9 (its momentum is 1 - torch's)
EPS = 1e-3  # Keras's BatchNorm epsilon; it only keeps the statistics' square root away from 0
UNFOLD_EXPONENT = 20  # unfold factors are kept within 2^±20, far from float32's subnormals


class ConvBatchNorm(torch.nn.Module):
    """A float Conv with a BatchNorm after it that is folded into its weight and bias (module docstring).
    forward takes the conv's input, weight and bias; `ARGS`: the positions of the weight and the bias that
    `fold` writes."""

    ARGS = (1, 2)

    def __init__(self, channels: int, geometry: dict):
        super().__init__()
        self.geometry = geometry
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("unfolded", torch.ones(channels))  # what `unfold` divided the weight by
        self.gamma = torch.nn.Parameter(torch.sqrt(self.running_var + EPS))
        self.beta = torch.nn.Parameter(self.running_mean.clone())
        self.sums: list[Tensor] | None = None  # while measuring: count, Σz, Σz² per channel (float64)
        self.target: tuple[Tensor, Tensor] | None = None  # while measuring: γ and β to normalise batches to

    def factor(self) -> Tensor:
        return self.gamma / torch.sqrt(self.running_var + EPS)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        g = self.geometry
        if g["explicit"]:
            x = F.pad(x, g["explicit"])
        return CONV[g["n"]](x, weight, bias, stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
                            groups=g["groups"])

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        k = self.factor()
        return self._compute(x, weight * k.reshape([-1] + [1] * (weight.dim() - 1)), bias, k)

    def _compute(self, x: Tensor, weight: Tensor, bias: Tensor, k: Tensor, grid: Tensor | None = None) -> Tensor:
        """The layer on its folded weight W·k: measuring, inference (on the folded bias, rounded to `grid`
        where the bias is an int32 one) or training under batch statistics."""
        if self.sums is None and not self.training:
            folded = bias * k + (self.beta - self.running_mean * k)
            return self._conv(x, weight, folded if grid is None else round_to_grid(folded, grid))
        # measured and normalised in the statistics' own units, conv(x, W·k) / k + b: BatchNorm's ε is then
        # the source's, relative to an unfolded layer's variance (a folded one's is k² times it)
        unfolded = weight / k.detach().reshape([-1] + [1] * (weight.dim() - 1))
        if self.sums is not None:
            return self._measure(self._conv(x, unfolded, bias))
        return self._normalise(self._conv(x, unfolded, None), bias.detach())

    def _normalise(self, conv: Tensor, bias: Tensor) -> Tensor:
        """BN_batch(conv + b) as BN_batch(conv): the bias moves the batch's mean only, so the running mean,
        kept for conv + b, moves by it for the update and back (no activation-sized add)."""
        with torch.no_grad():
            mean, var = self.running_mean - bias, self.running_var.clone()
        y = F.batch_norm(conv, mean, var, self.gamma, self.beta, True, MOMENTUM, EPS)
        with torch.no_grad():
            self.running_mean.copy_(mean + bias)
            self.running_var.copy_(var)
        return y

    def _measure(self, z: Tensor) -> Tensor:
        dims = [d for d in range(z.dim()) if d != 1]
        flat = z.detach().to(torch.float64)
        count = torch.tensor(float(z.numel() // z.shape[1]), dtype=torch.float64)
        parts = (count, flat.sum(dims), (flat * flat).sum(dims))
        self.sums = list(parts) if not self.sums else [a + b for a, b in zip(self.sums, parts)]
        if self.target is not None:
            return F.batch_norm(z, None, None, *self.target, True, 0.0, EPS)
        # what the layer computes once measured: z·k with k the unfold factor (a power of two: exact)
        return z * self.unfolded.reshape([-1] + [1] * (z.dim() - 2))

    @torch.no_grad()
    def unfold(self, weight: Tensor, bias: Tensor, factor: Tensor) -> None:
        """The weight and bias divided by `factor` per output channel (powers of two: exact), the units the
        source trained them in; the statistics measured next are then in those units, and γ and β in the
        source's (see the module docstring)."""
        change = factor / self.unfolded  # an unfolded layer unfolds again from where it stands
        weight.div_(change.reshape([-1] + [1] * (weight.dim() - 1)))
        bias.div_(change)
        self.unfolded.copy_(factor)
        self.gamma.copy_(torch.sqrt(self.running_var + EPS) * factor)  # the layer computes W·k as before

    def start_measuring(self, target: tuple[Tensor, Tensor] | None = None) -> None:
        """`target`: γ and β that each measured batch is normalised to on its way to the next layers, and
        that the layer keeps afterwards (see estimate_statistics)."""
        self.sums, self.target = [], target

    @torch.no_grad()
    def stop_measuring(self) -> None:
        """Running statistics from what was measured; γ and β the target's, else so that the layer is the
        identity again."""
        count, total, squares = self.sums
        mean = total / count
        self.running_mean.copy_(mean.to(torch.float32))
        self.running_var.copy_((squares / count - mean * mean).clamp_min(0).to(torch.float32))
        unfolded = self.unfolded
        self.gamma.copy_(torch.sqrt(self.running_var + EPS) * unfolded if self.target is None else self.target[0])
        self.beta.copy_(self.running_mean * unfolded if self.target is None else self.target[1])
        self.sums, self.target = None, None

    @torch.no_grad()
    def fold(self, weight: Tensor, bias: Tensor) -> np.ndarray:
        """γ, β and the statistics into the weight and bias; the layer is the identity afterwards. Returns
        the factor the weight was multiplied by since the program was built, `unfold` included (shaped to
        broadcast against it)."""
        k = self.factor().reshape([-1] + [1] * (weight.dim() - 1))
        bias.copy_(bias * k.reshape(-1) + (self.beta - self.running_mean * k.reshape(-1)))
        weight.mul_(k)
        since_built = k.double() / self.unfolded.double().reshape(k.shape)
        self.gamma.copy_(torch.sqrt(self.running_var + EPS))
        self.beta.copy_(self.running_mean)
        self.unfolded.fill_(1.0)
        return since_built.cpu().numpy()


class QuantizedConvBatchNorm(ConvBatchNorm):
    """A quantized Conv with a BatchNorm after it: its folded weight fake-quantized. forward takes the conv's
    input, its weight shadow, trained scale and zero point, the scale of its input and its bias shadow."""

    ARGS = (1, 5)

    def __init__(self, channels: int, geometry: dict, axis: int, low: int, high: int, grad_scale: float):
        super().__init__(channels, geometry)
        self.axis, self.low, self.high, self.grad_scale = axis, low, high, grad_scale

    def forward(self, x: Tensor, shadow: Tensor, scale: Tensor, zero: Tensor, input_scale: Tensor,
                bias: Tensor) -> Tensor:
        k = self.factor()
        weight = shadow * k.reshape([-1] + [1] * (shadow.dim() - 1))
        if self.low == -self.high:
            scale = capped_weight_scale(scale, weight, self.axis, self.high)
        quantized = lsq_fake_quantize(weight, scale, zero, self.axis, self.low, self.high, self.grad_scale)
        return self._compute(x, quantized, bias, k, input_scale * scale)


def _quantized_input(node: ir.Node, index: int, dtypes: set[ir.DataType]) -> ir.Node | None:
    """The DequantizeLinear of a constant integer initializer that feeds input `index`, else None."""
    if index >= len(node.inputs) or node.inputs[index] is None:
        return None
    dequantize = node.inputs[index].producer()
    if dequantize is None or dequantize.op_type != "DequantizeLinear":
        return None
    source = dequantize.inputs[0]
    if source.const_value is None or source.const_value.dtype not in dtypes or len(list(source.uses())) != 1:
        return None
    return dequantize


def _feeds_a_rectifier(b, node: ir.Node) -> bool:
    """Whether only a rectifier reads the conv's output (the Conv-BatchNorm-ReLU block), and no graph output."""
    consumers = list(node.outputs[0].consumers())
    return not b.is_output(node.outputs[0]) and len(consumers) == 1 and consumers[0].op_type in RECTIFIERS


def conv_with_batchnorm(b, node: ir.Node):
    """The Conv emitter of a float training program: a ConvBatchNorm where the conv's weight and bias are
    float initializers of its own and only a rectifier reads it; else the float conv."""
    own = [value is not None and b.const(value) is not None and b.is_trainable(value, b.const(value)) and
           len(list(value.uses())) == 1 for value in node.inputs[1:3]]
    if len(own) != 2 or not all(own) or not _feeds_a_rectifier(b, node):
        return float_conv(b, node)
    shape = _weight_shape(b, node)
    layer = ConvBatchNorm(shape[0], conv_geometry(b, node, shape))
    return b.module(f"{node.name or 'conv'}_batchnorm", layer, b.input(node, 0), b.input(node, 1), b.input(node, 2))


def quantized_conv_with_batchnorm(b, node: ir.Node, float_weights: dict[str, np.ndarray], batchnorms: set[str]):
    """The Conv emitter of a QAT program: a QuantizedConvBatchNorm where the conv reads a quantized input, an
    integer weight (per output channel or per tensor) that a BatchNorm was folded into (its float name in
    `batchnorms`) and an int32 bias, and only a rectifier reads it; else the float conv over the fake-quants."""
    weight = _quantized_input(node, 1, {ir.DataType.INT8, ir.DataType.UINT8})
    bias = _quantized_input(node, 2, {ir.DataType.INT32})
    activation = node.inputs[0].producer()
    axis = int(b.attr(weight, "axis", 1)) if weight is not None else None
    if weight is None or bias is None or activation is None or activation.op_type != "DequantizeLinear" or \
            float_name(weight.inputs[0].name) not in batchnorms or \
            not _feeds_a_rectifier(b, node) or (np.size(b.const(weight.inputs[1])) > 1 and axis != 0):
        return float_conv(b, node)
    shape = _weight_shape(b, node)
    low, high = weight_range(b.dtype(weight.inputs[0]), _int_const(b, weight, 2))
    layer = QuantizedConvBatchNorm(shape[0], conv_geometry(b, node, shape), 0, low, high, lsq_grad_scale(
        int(np.prod(shape)) // max(np.size(b.const(weight.inputs[1])), 1), high))
    return b.module(f"{node.name or 'conv'}_batchnorm", layer, b.input(node, 0),
                    _shadow_of(b, weight, float_weights), b.input(weight, 1), _zero(b, weight, None),
                    b.input(activation, 1), _shadow_of(b, bias, float_weights))


def layers(module: torch.nn.Module) -> list[ConvBatchNorm]:
    return [m for m in module.modules() if isinstance(m, ConvBatchNorm)]


def unfolding_factor(factor: np.ndarray | None, channels: int) -> np.ndarray:
    """Per output channel, the power of two nearest |the factor a source BatchNorm's fold multiplied the
    weight by| (qconvert/ir/fold_factors.py); 1 where none is known or it is not one per output channel."""
    ones = np.ones(channels, np.float32)
    if factor is None:
        return ones
    factor = np.abs(np.asarray(factor, np.float64))
    if factor.ndim and (factor.shape[0] not in (1, channels) or any(d != 1 for d in factor.shape[1:])):
        return ones
    factor = np.broadcast_to(factor.reshape(-1), (channels,))
    usable = np.isfinite(factor) & (factor > 0)
    exponent = np.clip(np.round(np.log2(np.where(usable, factor, 1.0))), -UNFOLD_EXPONENT, UNFOLD_EXPONENT)
    return np.where(usable, np.exp2(exponent), 1.0).astype(np.float32)


def _with_parameters(program) -> list[tuple[ConvBatchNorm, str, str]]:
    """Each ConvBatchNorm with the attribute names of the weight and bias Parameters it reads."""
    found = []
    for node in program.module.graph.nodes:
        layer = program.module.get_submodule(node.target) if node.op == "call_module" else None
        if isinstance(layer, ConvBatchNorm):
            found.append((layer, *(node.args[i].target for i in layer.ARGS)))
    return found


def _unfold(program) -> None:
    """Each ConvBatchNorm's weight and bias back in the units the source trained them in, where the IR
    records the fold (program.fold_factors)."""
    for layer, weight, bias in _with_parameters(program):
        parameter = program.module.get_parameter(weight)
        factor = unfolding_factor(program.fold_factors.get(weight), parameter.shape[0])
        layer.unfold(parameter, program.module.get_parameter(bias), torch.from_numpy(factor).to(parameter.device))


@torch.no_grad()
def estimate_statistics(program, feeds: dict[str, np.ndarray], batch: int, reference=None) -> None:
    """Each ConvBatchNorm's running statistics from one pass over `feeds` (see the module docstring).
    `reference`: a program of the same graph before pruning (its own statistics estimated here first): each
    layer of the same name and width takes its γ and β, so that its channels start at the mean and spread
    they had before pruning; the batches measured are normalised to them on the way, so that each
    layer's statistics are those of the layers before it recalibrated."""
    found = layers(program.module)
    if not found:
        return
    _unfold(program)
    targets = {}
    if reference is not None:
        estimate_statistics(reference, feeds, batch)
        targets = {name: (layer.gamma.detach().clone(), layer.beta.detach().clone())
                   for name, layer in reference.module.named_modules() if isinstance(layer, ConvBatchNorm)}
    for name, layer in program.module.named_modules():
        if isinstance(layer, ConvBatchNorm):
            target = targets.get(name)
            layer.start_measuring(target if target is not None and target[0].shape == layer.gamma.shape else None)
    program.module.train(False)
    count = len(next(iter(feeds.values())))
    for i in range(0, count, batch):
        program({name: torch.from_numpy(np.ascontiguousarray(array[i:i + batch])) for name, array in feeds.items()})
    for layer in found:
        layer.stop_measuring()


def fold(program) -> dict[str, np.ndarray]:
    """Every ConvBatchNorm folded into the Parameters it reads as weight and bias (a QAT program's shadows,
    which the write-back then quantizes). Returns the factor each weight Parameter was multiplied by, by
    attribute name (qconvert/ir/fold_factors.py keeps them for pruning)."""
    return {weight: layer.fold(program.module.get_parameter(weight), program.module.get_parameter(bias))
            for layer, weight, bias in _with_parameters(program)}

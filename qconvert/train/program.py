"""The float IR as a trainable torch.fx program: the fp32 torch emitter in its training mode.

Every float initializer the program reads as a tensor is an nn.Parameter, named in `parameters`
(module attribute -> initializer name) for the write-back (qconvert/train/writeback.py). The ones that
are constants of a formula rather than weights get no gradient:

- one-element initializers that no layer reads: Gelu's 0.5, a Pow's exponent, an epsilon, a 1/255 rescale;
- BatchNormalization's running mean and variance (statistics, and a variance trained below zero is NaN).

Initializers an emitter reads as Python numbers (Clip bounds, Resize scales, a Pad value) stay what they
are, and integer and shape constants stay buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
import torch
import torch.fx as fx

from qconvert.backends.torch.program import build
from qconvert.ir import fold_factors

TARGET = "train"  # the name UnsupportedOpError gives the training program
# Ops whose initializer inputs are weights, whatever their size (a one-channel bias, a single PRelu slope).
LAYERS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "PRelu", "BatchNormalization",
          "LayerNormalization", "InstanceNormalization", "GroupNormalization"}
STATISTICS = {"BatchNormalization": (3, 4)}  # input positions holding running statistics


@dataclass
class TrainableProgram:
    module: fx.GraphModule
    parameters: dict[str, str]  # module attribute -> initializer name
    inputs: list[str]  # the IR's input names, in the program's argument order
    outputs: list[str]
    # module attribute -> what folding a BatchNorm multiplied that weight by (qconvert/ir/fold_factors.py)
    fold_factors: dict[str, np.ndarray] = field(default_factory=dict)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def parameter_groups(self, lr: float) -> list[dict]:
        """The optimizer's parameter groups at learning rate `lr`."""
        return [{"params": self.trainable(), "lr": lr}]

    def constrain(self) -> None:
        """Puts the parameters back where they are valid, after an optimizer step (nothing to do here)."""

    def __call__(self, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The IR's outputs, in order, for feeds keyed by input name."""
        results = self.module(*(feeds[name] for name in self.inputs))
        return list(results) if isinstance(results, tuple) else [results]


def is_weight(value: ir.Value) -> bool:
    """Whether training changes this float initializer (see the module docstring)."""
    uses = list(value.uses())
    if any(index in STATISTICS.get(node.op_type, ()) for node, index in uses):
        return False
    size = int(np.prod(value.const_value.shape.dims)) if value.const_value is not None else 0
    return size > 1 or any(node.op_type in LAYERS for node, _ in uses)


def trainable_program(model: ir.Model, batch_statistics: bool = False) -> TrainableProgram:
    """The float IR (as qconvert.passes.cleanup leaves it) as a program in train mode, on the CPU.
    `batch_statistics`: Conv-rectifier layers train with a BatchNorm of their own (qconvert/train/batchnorm.py;
    its statistics start at batchnorm.estimate_statistics, and batchnorm.fold puts it back into the conv)."""
    emitters = {}
    if batch_statistics:
        from qconvert.train.batchnorm import conv_with_batchnorm

        emitters["Conv"] = conv_with_batchnorm
    module, builder, inputs, outputs = build(model, mode="train", target=TARGET, emitters=emitters)
    initializers, folds = model.graph.initializers, fold_factors.factors(model.graph)
    for attr, name in builder.parameters.items():
        module.get_parameter(attr).requires_grad_(is_weight(initializers[name]))
    return TrainableProgram(module, dict(builder.parameters), [p.name for p in inputs], [p.name for p in outputs],
                            {attr: folds[name] for attr, name in builder.parameters.items() if name in folds})

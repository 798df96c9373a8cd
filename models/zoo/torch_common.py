"""What every torch zoo model goes through: seeded BatchNorm statistics, then .pt2 / .pt / .onnx export.

Random weights leave a BatchNorm's running statistics at (0, 1), which folds into nothing. Here every
BatchNorm gets a random affine, its statistics are measured on a seeded batch in training mode (so each
layer sees its inputs as the final model makes them, and activations stay at a sane scale through deep
nets), and then the statistics are perturbed per channel (variance x0.5..2, mean shifted by up to 0.2
std) with weight and bias compensated so the layer computes the same function (see `perturbed`). Every
BN then folds into non-trivial scales and shifts, and a wrong fold shows in the SQNR.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

from models.zoo.registry import InputSpec, ZooModel

MAX_BATCH = 1024


def import_torchvision():
    """The torchvision wheel on this machine's index is a CUDA build whose C extension cannot load next
    to the CPU torch, and its fake-kernel registrations then fail at import. The models need none of
    those ops (nms, roi_align...), so that one module is skipped; everything else imports as usual."""
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[key]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


def example_inputs(model: ZooModel, batch: int = 2, seed: int = 1):
    """`model.sample_inputs` as torch tensors."""
    import torch

    return tuple(torch.from_numpy(array) for array in model.sample_inputs(batch, seed))


def perturbed(mean, var, gamma, beta, eps, rng):
    """Statistics and affine that compute `gamma * (x - mean) / sqrt(var + eps) + beta` (the measured
    normalization) from perturbed statistics: var' = var * f, mean' = mean + s * std, then
    gamma' = gamma * sqrt((var' + eps) / (var + eps)) and beta' = beta + gamma * (mean' - mean) / sqrt(var + eps).
    numpy arrays in, numpy arrays out; the one rule shared by the torch and Keras builders."""
    n = mean.shape[0]
    std = np.sqrt(var + eps)
    new_var = var * rng.uniform(0.5, 2.0, n)
    new_mean = mean + rng.uniform(-0.2, 0.2, n) * std
    new_gamma = gamma * np.sqrt((new_var + eps) / (var + eps))
    new_beta = beta + gamma * (new_mean - mean) / std
    return [a.astype("float32") for a in (new_mean, new_var, new_gamma, new_beta)]


def randomize_norms(module, example: tuple, seed: int, layer_scale: tuple[float, float] | None = None) -> None:
    """Random BatchNorm affine, measured and then perturbed statistics (see the module docstring);
    optionally random LayerScale-style gammas (at their 1e-6 init every residual block is an identity)."""
    import torch

    rng = np.random.default_rng(seed)
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine]
    module.eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if layer_scale and (name.endswith("layer_scale") or name.endswith("layer_scale.gamma")):
                parameter.copy_(torch.from_numpy(rng.uniform(*layer_scale, parameter.shape).astype("float32")))
        for bn in norms:
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, bn.num_features).astype("float32")))
            bn.bias.copy_(torch.from_numpy(rng.uniform(-0.2, 0.2, bn.num_features).astype("float32")))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one pass sets the statistics to that batch's
            bn.train()
        module(*example)
        module.eval()
        for bn in norms:
            bn.momentum = 0.1
            values = perturbed(*(t.numpy().astype("float64") for t in (bn.running_mean, bn.running_var, bn.weight,
                                                                       bn.bias)), bn.eps, rng)
            for tensor, value in zip((bn.running_mean, bn.running_var, bn.weight, bn.bias), values):
                tensor.copy_(torch.from_numpy(value))


def dynamic_shapes(model: ZooModel) -> dict:
    """torch.export Dims for each input's dynamic axes: batch (min 1) and, for text, the sequence."""
    from torch.export import Dim

    dims = {}
    shapes = {}
    for spec in model.inputs:
        axes = {}
        for axis in spec.dynamic:
            if axis == 0:
                dims.setdefault("batch", Dim("batch", min=1, max=MAX_BATCH))
                axes[axis] = dims["batch"]
            else:
                key = f"axis{axis}"
                limit = model.options.get("max_seq", 64)
                dims.setdefault(key, Dim(f"seq{axis}", min=2, max=limit))
                axes[axis] = dims[key]
        shapes[spec.name] = axes
    return shapes


def save_pt2(module, model: ZooModel, out: Path) -> None:
    import torch

    program = torch.export.export(module, example_inputs(model), dynamic_shapes=dynamic_shapes(model))
    torch.export.save(program, out / model.file)


def save_torchscript(module, model: ZooModel, out: Path) -> None:
    """Traced under no_grad, as users trace for inference (this is what takes nn.MultiheadAttention's
    fast path, aten::_native_multi_head_attention)."""
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(module, example_inputs(model), check_trace=False)
    torch.jit.save(traced, out / model.file)


def check_finite(module, model: ZooModel) -> None:
    """A zoo model whose outputs overflow, or are all zero, measures nothing: refuse it at build time."""
    import torch

    with torch.no_grad():
        outputs = module(*example_inputs(model))
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for i, output in enumerate(outputs):
        largest = output.abs().max()
        if not torch.isfinite(output).all() or largest > 1e4 or largest == 0:
            raise ValueError(f"{model.name}: output {i} is not finite, above 1e4 or all zero (max {largest:.3g})")


def spec(name: str, shape: tuple[int, ...], dtype: str = "float32", int_range=None, dynamic=(0,),
         value_range=None) -> InputSpec:
    return InputSpec(name, tuple(shape), dtype, int_range, tuple(dynamic), value_range)


def prepare(module, model: ZooModel, **norm_options):
    """`module` with its seeded BatchNorm statistics (see the module docstring), checked finite: as saved."""
    randomize_norms(module, example_inputs(model, batch=8, seed=2), seed=model.seed + 1, **norm_options)
    check_finite(module, model)
    return module

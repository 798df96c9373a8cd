"""The target registry: every name a user can type after --to, and how it is emitted and run.

Backends register their targets when their `targets` module is imported; BACKENDS lists those modules.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import onnx_ir as ir

from qconvert.errors import UsageError

BACKENDS = ["qconvert.backends.onnx.targets", "qconvert.backends.tflite.targets", "qconvert.backends.torch.targets"]


class IRVariant(enum.Enum):
    """The IR a target is emitted from."""

    FLOAT = "float"  # the cleaned float IR
    QDQ = "qdq"  # the float IR with QuantizeLinear/DequantizeLinear pairs from calibration (needs --calib)


class Quantization(enum.Enum):
    """What a target does to the weights and activations."""

    NONE = "none"  # a float target
    STATIC = "static"  # emits the QDQ IR as it is: calibrated int8
    DYNAMIC = "dynamic"  # quantizes the float IR's weights itself at write time; activations at run time


@dataclass(frozen=True)
class EmitOptions:
    """What the user chose that emitters need beyond the IR."""

    io_layout: str | None = None  # nhwc | nchw: the artifact's 4-D input/output layout; None = the source's
    quant: Any = None  # qconvert.quant.config.QuantConfig for quantized targets (method, granularity, dtype)
    torch_engine: str | None = None  # PyTorch int8 engine the weights are packed for; None = x86


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str
    description: str
    suffix: str
    # Writes the artifact at the given path; may return JSON-able facts about it (I/O layouts, scales)
    # that the report keeps and the opener receives as its options.
    emit: Callable[[ir.Model, Path, EmitOptions], dict | None]
    opener: str  # "module:function" that opens the artifact as a Session in the child process
    requires: tuple[str, ...] = ()  # Python modules the runtime needs
    parity_floor_db: float = 60.0  # SQNR against the source below which the artifact is a failure
    notes: tuple[str, ...] = field(default_factory=tuple)
    quantization: Quantization = Quantization.NONE

    @property
    def consumes(self) -> IRVariant:
        """The IR variant `emit` receives."""
        return IRVariant.QDQ if self.quantization is Quantization.STATIC else IRVariant.FLOAT

    def missing_modules(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    @property
    def available(self) -> bool:
        return not self.missing_modules()


_REGISTRY: dict[str, Target] = {}


def register(target: Target) -> Target:
    if target.name in _REGISTRY:
        raise RuntimeError(f"target {target.name} is registered twice")
    _REGISTRY[target.name] = target
    return target


def all_targets() -> dict[str, Target]:
    for module in BACKENDS:
        importlib.import_module(module)
    return dict(_REGISTRY)


def resolve_targets(names: list[str]) -> list[Target]:
    """Target names to Targets; `all` means every target available on this machine."""
    targets = all_targets()
    if "all" in names:
        names = [n for n in names if n != "all"] + [n for n, t in targets.items() if t.available]
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise UsageError(f"unknown target {', '.join(unknown)}; valid targets: {', '.join(targets)}")
    if not names:
        raise UsageError(f"no target given; pass --to with one or more of: {', '.join(targets)}")
    return [targets[n] for n in dict.fromkeys(names)]

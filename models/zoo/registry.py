"""The zoo's entries: what each model file is, how to build it and what the CLI needs to read it.

One `ZooModel` is one source file (an architecture saved as .pt2 and as .pt is two entries), so the bench
has one row per file a user could bring. Builders live in one module per family and import their
frameworks lazily, so listing the registry costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FAMILIES = ("torchvision", "keras", "hf", "detector")
FORMATS = ("pt2", "pt", "h5", "keras", "onnx")


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]  # the example shape the model is built, exported and converted at (batch first)
    dtype: str = "float32"
    int_range: tuple[int, int] | None = None  # [low, high) for integer inputs (token ids stay in the vocab)
    dynamic: tuple[int, ...] = (0,)  # axes the saved file keeps symbolic
    # Floats drawn uniform in [low, high): pixels, for a model that rescales them itself (Keras
    # include_preprocessing). None: standard normal, the domain of a model that takes normalized images.
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ZooModel:
    name: str  # unique row name, e.g. "resnet50" or "efficientnet_b0.pt"
    family: str  # one of FAMILIES
    arch: str  # the architecture, shared by the entries that save it in several formats
    format: str  # one of FORMATS
    inputs: tuple[InputSpec, ...]
    builder: str  # "module:function" taking (ZooModel, out_dir: Path) and writing out_dir / file
    options: dict = field(default_factory=dict, hash=False, compare=False)  # builder-specific settings
    pin_shapes: bool = False  # pass --input-shape for every input (TorchScript, or to fix dynamic dims)
    outputs: int = 1  # how many output tensors the source returns
    seed: int = 0

    @property
    def file(self) -> str:
        stem = self.name.split(".")[0]
        return f"{stem}.{self.format}"

    def cli_args(self) -> list[str]:
        """Source flags qconvert needs for this file, besides the path."""
        if not self.pin_shapes:
            return []
        args = []
        for spec in self.inputs:
            dims = ",".join(str(d) for d in (1, *spec.shape[1:]))
            suffix = "" if spec.dtype == "float32" else f":{spec.dtype}"
            prefix = f"{spec.name}=" if len(self.inputs) > 1 or spec.dtype != "float32" else ""
            args += ["--input-shape", f"{prefix}{dims}{suffix}"]
        return args

    def sample_inputs(self, batch: int, seed: int) -> list[np.ndarray]:
        """Seeded arrays in each input's domain: integers inside their range, floats standard normal or
        uniform in `value_range`. What the builders measure BatchNorm statistics on and the bench's
        parity samples, so both see the inputs the model is made for."""
        rng = np.random.default_rng(seed)
        arrays = []
        for spec in self.inputs:
            shape = (batch, *spec.shape[1:])
            if spec.dtype.startswith("int"):
                low, high = spec.int_range or (0, 2)
                arrays.append(rng.integers(low, high, size=shape).astype(spec.dtype))
            elif spec.value_range is not None:
                arrays.append(rng.uniform(*spec.value_range, size=shape).astype(spec.dtype))
            else:
                arrays.append(rng.standard_normal(shape).astype(spec.dtype))
        return arrays

    def build(self, out: Path) -> Path:
        module, function = self.builder.split(":")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        getattr(importlib.import_module(module), function)(self, out)
        return out / self.file


def all_models() -> list[ZooModel]:
    from models.zoo import detector, hf_zoo, keras_zoo, torchvision_zoo

    models = [*torchvision_zoo.ENTRIES, *keras_zoo.ENTRIES, *hf_zoo.ENTRIES, *detector.ENTRIES]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate zoo names: {duplicates}")
    return models


def select(only: list[str] | None = None, families: list[str] | None = None) -> list[ZooModel]:
    models = all_models()
    if only:
        unknown = sorted(set(only) - {m.name for m in models})
        if unknown:
            raise ValueError(f"unknown zoo model(s): {', '.join(unknown)}")
        models = [m for m in models if m.name in only]
    if families:
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown famil(ies): {', '.join(unknown)}")
        models = [m for m in models if m.family in families]
    return models

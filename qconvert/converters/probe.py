"""Sizes for the dynamic dims after the batch (sequence length, image height and width), found by
running the IR, so that random inputs for the adapters' check, parity and timing are ones it accepts.

A detector exported with symbolic height and width needs sizes its strides divide; an encoder takes
any sequence length up to its position table. The first size that runs is kept in the IR's metadata
(`example_shapes`); `--input-shape` pins the dims instead.
"""

from __future__ import annotations

import onnx_ir as ir

from qconvert.errors import UsageError
from qconvert.ir.metadata import PREFIX, get_meta, set_meta

# Not 1: a size-1 dim broadcasts, so a graph that fits no size would seem to run.
CANDIDATES = (64, 32, 128, 224, 256, 320, 16, 8, 512, 640, 4, 2)
PROBE_BATCH = 2  # as the adapters' check: a size-1 batch would hide a lost dynamic batch


def _inputs(model: ir.Model) -> list[ir.Value]:
    return [v for v in model.graph.inputs if not v.is_initializer()]


def dynamic_dims(model: ir.Model) -> dict[str, list[int]]:
    """Per input, the axes after the first whose size is not fixed."""
    found = {}
    for value in _inputs(model):
        axes = [axis for axis, dim in enumerate(value.shape or ()) if axis > 0 and not isinstance(dim, int)]
        if axes:
            found[value.name] = axes
    return found


def _pin_hint(model: ir.Model) -> str:
    """`images=1,3,height,width`: the dims to replace by sizes, by their symbolic names."""
    parts = []
    for value in _inputs(model):
        dims = []
        for axis, dim in enumerate(value.shape or ()):
            name = getattr(dim, "value", None)
            dims.append(str(dim) if isinstance(dim, int) else "1" if axis == 0 else (name or "SIZE").upper())
        parts.append(f"{value.name}={','.join(dims)}")
    return " ".join(parts)


def choose_example_shapes(model: ir.Model, source: str) -> None:
    """Record the first candidate size for every dynamic non-batch dim with which the IR runs."""
    from qconvert.converters.parity import run_ir
    from qconvert.ir.inputs import random_feeds, specs_from_ir

    dynamic = dynamic_dims(model)
    if not dynamic or get_meta(model, "example_shapes"):
        return
    errors = []
    for size in CANDIDATES:
        examples = {v.name: [d if isinstance(d, int) else size for d in v.shape] for v in _inputs(model)}
        set_meta(model, "example_shapes", examples)
        try:
            run_ir(model, random_feeds(specs_from_ir(model), PROBE_BATCH, 0))
            return
        except Exception as error:  # noqa: BLE001  (a size the model rejects: try the next)
            errors.append(error)
    model.metadata_props.pop(PREFIX + "example_shapes", None)
    where = ", ".join(f"{name} dims {axes}" for name, axes in dynamic.items())
    raise UsageError(
        f"{source} has dynamic sizes ({where}) and none of {', '.join(map(str, CANDIDATES))} lets it run "
        f"({str(errors[0]).splitlines()[0][:160] if errors else ''}); pin them with --input-shape {_pin_hint(model)}"
    )

"""Input descriptions: parsed from `--input-shape` and read back from the IR."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qconvert.errors import UsageError

DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "uint8": np.uint8,
    "int8": np.int8,
    "bool": np.bool_,
}


@dataclass(frozen=True)
class InputSpec:
    """One model input. ``shape[0]`` is the batch dimension; ``None`` marks any dynamic dimension."""

    name: str | None
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    # Integer inputs that index embeddings must stay below the table size: [low, high).
    int_range: tuple[int, int] | None = None
    # Sizes that random inputs give the dynamic dims after the batch (chosen by probing the model).
    example: tuple[int, ...] | None = None

    def with_name(self, name: str) -> "InputSpec":
        return InputSpec(name, self.shape, self.dtype, self.int_range, self.example)


_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z_][\w./:-]*?)=)?(?P<dims>\d+(?:,\d+)*)(?::(?P<dtype>\w+))?$")


def parse_input_shape(text: str) -> InputSpec:
    """Parse `1,3,32,32`, `x=1,3,32,32` or `input_ids=1,128:int64`."""
    match = _SPEC.match(text.strip().replace(" ", ""))
    if not match:
        raise UsageError(
            f"cannot parse --input-shape {text!r}; write 1,3,32,32 for one input, "
            "NAME=1,3,32,32 per input when there are several, and :int64 etc. for a dtype"
        )
    dtype = match.group("dtype") or "float32"
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r} in --input-shape {text!r}; use one of {', '.join(DTYPES)}")
    dims = tuple(int(d) for d in match.group("dims").split(","))
    if any(d <= 0 for d in dims):
        raise UsageError(f"--input-shape {text!r} has a zero dimension; every dimension must be positive")
    return InputSpec(match.group("name"), dims, dtype)


def parse_input_shapes(texts: list[str] | tuple[str, ...]) -> list[InputSpec]:
    specs = [parse_input_shape(t) for t in texts]
    if len(specs) > 1 and any(s.name is None for s in specs):
        raise UsageError("several --input-shape values need names: NAME=1,3,32,32 for each input")
    return specs


def pin_input_shapes(model, specs: list[InputSpec], source: str) -> None:
    """`--input-shape` on an IR whose inputs record their shapes: each dynamic dim after the first becomes
    the given size; the first (batch) dim stays dynamic where it is. A static dim must agree."""
    import onnx_ir as ir

    if not specs:
        return
    inputs = [v for v in model.graph.inputs if not v.is_initializer()]
    for spec, value in zip(match_specs_to_inputs(specs, [v.name for v in inputs], source), inputs):
        dims = list(value.shape) if value.shape is not None else [None] * len(spec.shape)
        if len(dims) != len(spec.shape):
            raise UsageError(f"--input-shape {spec.name}={','.join(map(str, spec.shape))} has {len(spec.shape)} "
                             f"dims, but input {value.name!r} of {source} has {len(dims)}")
        pinned = []
        for axis, (dim, size) in enumerate(zip(dims, spec.shape)):
            if isinstance(dim, int):
                if dim != size:
                    raise UsageError(f"input {value.name!r} of {source} has dim {axis} fixed at {dim}; "
                                     f"--input-shape gives {size}")
                pinned.append(dim)
            else:
                pinned.append(dim if axis == 0 else size)
        value.shape = ir.Shape(pinned)


def match_specs_to_inputs(specs: list[InputSpec], input_names: list[str], source: str) -> list[InputSpec]:
    """Order user specs like the model's inputs; fail with the names the model has."""
    if not specs:
        raise UsageError(
            f"{source} does not record its input shapes; pass --input-shape "
            + (" ".join(f"{n}=1,3,32,32" for n in input_names) if len(input_names) > 1 else "1,3,32,32")
        )
    if len(specs) == 1 and specs[0].name is None:
        if len(input_names) != 1:
            raise UsageError(
                f"{source} has {len(input_names)} inputs ({', '.join(input_names)}); "
                "give one --input-shape NAME=... per input"
            )
        return [specs[0].with_name(input_names[0])]
    by_name = {s.name: s for s in specs}
    missing = [n for n in input_names if n not in by_name]
    unknown = [n for n in by_name if n not in input_names]
    if missing or unknown:
        raise UsageError(
            f"--input-shape names {sorted(by_name)} do not match the inputs of {source} "
            f"({', '.join(input_names)}); give NAME=... for each of them"
        )
    return [by_name[n] for n in input_names]

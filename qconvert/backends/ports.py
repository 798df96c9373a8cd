"""The I/O contract of an artifact: one Port per input and output, in the source's order and names.

Built from the IR (names, dtypes, shapes, layouts) and what the emitter reports about its file (the
runtime's own names, a layout permutation, an integer dtype with its scale and zero point). It is
written beside every artifact as `<artifact>.io.json`, so a caller reads outputs by position or name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnx_ir as ir

from qconvert.ir.metadata import input_layouts


@dataclass(frozen=True)
class Port:
    name: str  # the source's (and the IR's) name
    index: int  # position among the artifact's inputs or outputs
    dtype: str  # what the artifact takes or gives
    shape: list  # in the artifact's layout; a dynamic dim is its symbolic name (or null)
    layout: str = "-"  # NCHW | NHWC | - (what the artifact's tensor is)
    perm: list[int] | None = None  # artifact tensor = transpose(IR tensor, perm); None: as the IR has it
    runtime_name: str | None = None  # the name the runtime gives it where that differs (a TFLite signature key)
    scale: float | None = None  # integer I/O: real = scale * (q - zero_point)
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("shape",)}


def _dims(value: ir.Value, perm: list[int] | None) -> list:
    dims = [d if isinstance(d, int) else (getattr(d, "value", None) or None) for d in (value.shape or ())]
    return [dims[axis] for axis in perm] if perm and len(perm) == len(dims) else dims


def _ports(values: list[ir.Value], layouts: dict[str, str], reported: list[dict], quantized: list[dict]) -> list[Port]:
    by_name = {p.get("name"): p for p in reported}
    quant_by_name = {p.get("name"): p for p in quantized}
    ports = []
    for index, value in enumerate(values):
        facts, quant = by_name.get(value.name, {}), quant_by_name.get(value.name, {})
        perm = list(facts["perm"]) if facts.get("perm") and list(facts["perm"]) != sorted(facts["perm"]) else None
        dtype = quant.get("dtype") or facts.get("dtype") or (value.dtype.numpy().name if value.dtype else "")
        runtime_name = facts.get("signature") if facts.get("signature") not in (None, value.name) else None
        ports.append(Port(value.name, index, dtype, _dims(value, perm), facts.get("layout") or layouts.get(value.name, "-"),
                          perm, runtime_name, quant.get("scale"), quant.get("zero_point")))
    return ports


def io_contract(model: ir.Model, facts: dict) -> dict:
    """{"inputs": [...], "outputs": [...]} of Port dicts, plus the integer I/O dtype where there is one."""
    layouts = input_layouts(model)
    image = [v for v in layouts.values() if v in ("NCHW", "NHWC")]
    for value in model.graph.outputs:  # an image output shares the source's image layout
        layouts.setdefault(value.name, image[0] if image and value.shape is not None and len(value.shape) == 4
                           else "-")
    io = facts.get("io") or {}
    inputs = [v for v in model.graph.inputs if not v.is_initializer()]
    contract = {
        "inputs": [p.to_dict() for p in _ports(inputs, layouts, facts.get("inputs") or [], io.get("inputs", []))],
        "outputs": [p.to_dict() for p in _ports(list(model.graph.outputs), layouts, facts.get("outputs") or [],
                                                io.get("outputs", []))],
    }
    if io.get("io_dtype"):
        contract["io_dtype"] = io["io_dtype"]
    return contract

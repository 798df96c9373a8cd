"""The bundled model file: batch 1 and every shape static, the way edge runtimes and compilers take it.

- onnxruntime: the conversion's .onnx with its dynamic input dims fixed (onnxruntime.tools'
  make_input_shape_fixed, the library behind make_dynamic_shape_fixed) and the output shapes inferred again;
- LiteRT: emitted again from the kept IR with the batch pinned (passes/pin_batch), so the converter traces
  static shapes; the file's shape_signature is then checked for -1;
- torch: the TorchScript file as converted: its program keeps the batch a run-time value (any batch runs);
  the golden set runs it at batch 1.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from qconvert.backends.ports import io_contract
from qconvert.bundle.run_dir import Run
from qconvert.errors import ExportError, UsageError

BATCH = 1


@dataclass
class StaticArtifact:
    path: Path
    io: dict  # the I/O contract of the bundled file (Port dicts), every dim an int
    dynamic_kept: list[str] = field(default_factory=list)  # dims the file itself still leaves dynamic (torch)


def static_artifact(run: Run, dest: Path) -> StaticArtifact:
    runtime = run.target.runtime
    if runtime == "onnxruntime":
        return _onnx(run, dest)
    if runtime == "LiteRT":
        return _tflite(run, dest)
    if runtime == "torch":
        shutil.copyfile(run.artifact, dest)
        io = _pinned(run.io, run)
        return StaticArtifact(dest, io, [f"{p['name']}[0]" for p in run.io["inputs"] if not _is_int(p["shape"][0])])
    raise UsageError(f"package: no bundle for runtime {runtime} ({run.target.name})")


def _is_int(dim) -> bool:
    return isinstance(dim, int)


def _pinned(io: dict, run: Run) -> dict:
    """The I/O contract with a dynamic first dim as BATCH; any other dynamic dim is refused."""
    pinned = {}
    for kind in ("inputs", "outputs"):
        ports = []
        for port in io[kind]:
            shape = list(port["shape"])
            if shape and not _is_int(shape[0]):
                shape[0] = BATCH
            if kind == "inputs" and not all(_is_int(d) for d in shape):
                raise UsageError(f"package: input {port['name']} of {run.artifact.name} has dynamic dims besides "
                                 f"the batch ({port['shape']}); convert again with --input-shape to fix them")
            ports.append({**port, "shape": shape})
        pinned[kind] = ports
    return {**io, **pinned}


def _onnx(run: Run, dest: Path) -> StaticArtifact:
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    io = _pinned(run.io, run)
    model = onnx.load(str(run.artifact))
    for port in io["inputs"]:
        make_input_shape_fixed(model.graph, port["name"], port["shape"])
    fix_output_shapes(model)
    # Re-checked: inferred value_info must not carry a dim the fixing did not reach.
    del model.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    dynamic = [v.name for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
               if v.type.HasField("tensor_type")
               and any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    if dynamic:
        raise ExportError(f"package: {run.artifact.name} keeps dynamic dims after fixing the batch to {BATCH} "
                          f"(values {', '.join(dynamic[:5])}); convert again with --input-shape")
    onnx.save(model, str(dest))
    for kind, values in (("outputs", model.graph.output),):
        for port, value in zip(io[kind], values):
            port["shape"] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    return StaticArtifact(dest, io)


def _tflite(run: Run, dest: Path) -> StaticArtifact:
    from qconvert.ir import load_ir
    from qconvert.passes.pin_batch import PinBatch, dynamic_input_dims

    model = PinBatch(batch=BATCH)(load_ir(run.kept.ir_path(run.target.consumes))).model
    if dynamic_input_dims(model):
        raise UsageError(f"package: inputs {', '.join(dynamic_input_dims(model))} of {run.artifact.name} are dynamic "
                         "besides the batch; convert again with --input-shape to fix them")
    facts = run.target.emit(model, dest, run.kept.emit_options()) or {}
    dynamic = dynamic_tensors(dest)
    if dynamic:
        raise ExportError(f"package: the static {run.target.name} emission left dynamic dims in tensors "
                          f"{', '.join(dynamic[:5])}")
    io = io_contract(model, facts)
    for kind, shapes in zip(("inputs", "outputs"), io_shapes(dest)):
        for port, shape in zip(io[kind], shapes):
            port["shape"] = shape  # what the file says, in its own layout
    return StaticArtifact(dest, io)


def _subgraph(path: Path):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    return model, model.subgraphs[0]


def dynamic_tensors(path: Path) -> list[str]:
    """Names of the tensors whose shape_signature holds -1 (a dim the file leaves dynamic)."""
    _, subgraph = _subgraph(path)
    return [(t.name.decode() if isinstance(t.name, bytes) else str(t.name)) for t in subgraph.tensors
            if t.shapeSignature is not None and -1 in list(t.shapeSignature)]


def io_shapes(path: Path) -> tuple[list[list[int]], list[list[int]]]:
    _, subgraph = _subgraph(path)
    return tuple([[int(d) for d in subgraph.tensors[i].shape] for i in indices]
                 for indices in (subgraph.inputs, subgraph.outputs))

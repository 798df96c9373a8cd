"""PyTorch sources: TorchScript `.pt`, ExportedProgram `.pt2`, and `file.py:factory` (+ --weights).

nn.Modules and ExportedPrograms go through torch.onnx's dynamo exporter (it returns onnx-ir directly);
TorchScript goes through the TorchScript exporter, the one made for it (torch.export cannot trace a
ScriptModule).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qconvert.converters.input_spec import InputSpec, match_specs_to_inputs, pin_input_shapes
from qconvert.converters.probe import choose_example_shapes
from qconvert.converters.parity import check_ir_matches_source
from qconvert.converters.source import Source
from qconvert.converters.torch_batchnorm_folds import record_exporter_folds
from qconvert.converters.torchscript_batchnorm_folds import record_torchscript_folds
from qconvert.converters.user_code import is_factory_spec, load_callable, split_factory
from qconvert.errors import ExportError, SourceLoadError, UsageError
from qconvert.ir.metadata import set_meta

OPSET = 18


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress and logs warnings; the CLI shows its own."""
    import logging

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _format_of(path: str) -> str:
    if is_factory_spec(path):
        return "python-factory"
    suffix = Path(path).suffix.lower()
    return {".pt": "torchscript", ".pth": "torchscript", ".pt2": "exported-program"}[suffix]


def load_weights(module, weights: str):
    import torch

    if not Path(weights).is_file():
        raise UsageError(f"no such weights file: {weights}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SourceLoadError(
            f"cannot read weights {weights}: {type(error).__name__}: {str(error).splitlines()[0]}; "
            "save them with torch.save(model.state_dict(), path)"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SourceLoadError(f"{weights} holds a {type(state).__name__}, not a state_dict")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise SourceLoadError(f"weights {weights} do not fit the model: {first}") from error
    return module


def load_module(path: str, options: dict):
    """The source as a callable torch object in eval mode (nn.Module, ScriptModule, or EP's module)."""
    import torch

    fmt = _format_of(path)
    if fmt == "python-factory":
        factory = load_callable(path, trust_code=options.get("trust_code", False))
        try:
            module = factory()
        except Exception as error:
            raise SourceLoadError(f"calling {path}() failed: {type(error).__name__}: {error}") from error
        if not isinstance(module, torch.nn.Module):
            raise SourceLoadError(f"{path}() returned a {type(module).__name__}, not a torch.nn.Module")
        if options.get("weights"):
            load_weights(module, options["weights"])
        return module.eval()
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    if options.get("weights"):
        raise UsageError("--weights applies to file.py:factory sources; a .pt/.pt2 file carries its weights")
    if not zipfile.is_zipfile(path):
        raise SourceLoadError(f"{path} is not a PyTorch archive (truncated or another format); save it again")
    if fmt == "torchscript" and not any(n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()):
        raise SourceLoadError(
            f"{path} is a torch.save file (a state_dict or pickled module), not TorchScript; "
            "give the model as file.py:factory with --weights " + Path(path).name
        )
    try:
        with _quiet():
            if fmt == "torchscript":
                return torch.jit.load(path, map_location="cpu").eval()
            return torch.export.load(path)
    except Exception as error:
        hint = (
            "save it with torch.jit.save(torch.jit.trace(model, example), path), or give file.py:factory "
            "with --weights for a state_dict"
            if fmt == "torchscript"
            else "save it with torch.export.save(torch.export.export(model, args), path)"
        )
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SourceLoadError(f"cannot load {path} as {fmt}: {message}; {hint}") from error


def _input_names(obj) -> list[str]:
    import torch

    if isinstance(obj, torch.export.ExportedProgram):
        return list(obj.graph_signature.user_inputs)
    if isinstance(obj, torch.jit.ScriptModule):
        return [a.name for a in obj.forward.schema.arguments[1:]]
    params = inspect.signature(obj.forward).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _specs_from_exported_program(ep) -> list[InputSpec]:
    import torch

    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    specs = []
    for name in ep.graph_signature.user_inputs:
        value = placeholders[name].meta.get("val")
        shape = tuple(d if isinstance(d, int) else None for d in value.shape)
        dtype = str(value.dtype).replace("torch.", "")
        specs.append(InputSpec(name, shape, dtype))
    del torch
    return specs


def _example_args(specs: list[InputSpec], batch: int = 2):
    """Batch 2, not 1: torch.export specialises size-1 dims, which would freeze the batch."""
    import torch

    args = []
    rng = np.random.default_rng(0)
    for spec in specs:
        shape = tuple(batch if i == 0 else (d or 1) for i, d in enumerate(spec.shape))
        if spec.dtype.startswith("int"):
            args.append(torch.from_numpy(rng.integers(0, 2, size=shape).astype(spec.dtype)))
        else:
            args.append(torch.from_numpy(rng.standard_normal(shape).astype(spec.dtype)))
    return tuple(args)


def _flatten(outputs) -> list:
    if isinstance(outputs, (list, tuple)):
        return [x for item in outputs for x in _flatten(item)]
    if isinstance(outputs, dict):
        return [x for item in outputs.values() for x in _flatten(item)]
    return [outputs]


def _error_chain(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _export_error(path: str, error: Exception) -> ExportError:
    """One line naming the op and node that failed, taken from the innermost exporter error."""
    chain = _error_chain(error)
    text = "\n".join(str(e) for e in chain)
    ops = re.findall(r"op='([\w.]+)'|(aten::[\w.]+|aten\.[\w.]+|prim::\w+)", text)
    op = next((a or b for a, b in ops), None)
    node = re.search(r"node %(\w+)", text)
    where = (f" at op {op}" if op else "") + (f" (node {node.group(1)})" if node else "")
    innermost = str(chain[-1]).strip().splitlines()
    detail = innermost[0][:240] if innermost else type(chain[-1]).__name__
    return ExportError(
        f"exporting {path} to ONNX failed{where}: {detail}; "
        "rewrite or remove that op, or rerun with --debug for the full trace"
    )


def _export_module(module, specs: list[InputSpec]):
    """torch.onnx's ONNXProgram (its .model the IR, its .exported_program what was exported)."""
    import torch

    args = _example_args(specs)
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic = {s.name: {0: batch} for s in specs}
    with _quiet():
        try:
            program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic, opset_version=OPSET)
        except Exception:
            # A model whose code fixes the batch size: export it static rather than not at all.
            program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET)
    return program


def _export_torchscript(module, specs: list[InputSpec], n_outputs: int) -> ir.Model:
    import onnx
    import torch

    from qconvert.converters.torchscript_symbolics import register

    register()
    buffer = io.BytesIO()
    names = [s.name for s in specs]
    outputs = ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]
    axes = {n: {0: "batch"} for n in names + outputs}
    with _quiet():
        torch.onnx.export(
            module, _example_args(specs), buffer, dynamo=False, input_names=names, output_names=outputs,
            dynamic_axes=axes, opset_version=17,
        )
    return ir.serde.deserialize_model(onnx.load_from_string(buffer.getvalue()))


def _rename_outputs(model: ir.Model) -> None:
    outputs = model.graph.outputs
    input_names = {v.name for v in model.graph.inputs}
    for i, value in enumerate(outputs):
        wanted = "output" if len(outputs) == 1 else f"output_{i}"
        if value.name not in input_names and value.name != wanted:
            value.name = wanted


def _predictor(module, names: list[str], device: str = "cpu"):
    import torch

    def predict(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in names]
        with torch.inference_mode():
            outputs = _flatten(module(*args))
        return [o.detach().float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in outputs]

    return predict


def load(path: str, *, input_specs: list[InputSpec], weights: str | None, trust_code: bool) -> Source:
    import torch

    torch.manual_seed(0)
    options = {"weights": weights, "trust_code": trust_code}
    fmt = _format_of(path)
    obj = load_module(path, options)
    if isinstance(obj, torch.export.ExportedProgram):
        specs = _specs_from_exported_program(obj)
        try:
            with _quiet():
                model = torch.onnx.export(obj, dynamo=True, opset_version=OPSET).model
        except Exception as error:
            raise _export_error(path, error) from error
        record_exporter_folds(model, obj)
        callable_module = obj.module()
    else:
        specs = match_specs_to_inputs(input_specs, _input_names(obj), path)
        try:
            with torch.inference_mode():
                n_outputs = len(_flatten(obj(*_example_args(specs))))
        except Exception as error:
            raise SourceLoadError(
                f"running {path} on inputs of shape {[s.shape for s in specs]} failed: {error}; "
                "check --input-shape"
            ) from error
        try:
            if fmt == "torchscript":
                model = _export_torchscript(obj, specs, n_outputs)
            else:
                program = _export_module(obj, specs)
                model = program.model
        except Exception as error:
            raise _export_error(path, error) from error
        if fmt == "torchscript":
            record_torchscript_folds(model, obj)
        else:
            record_exporter_folds(model, program.exported_program)
        callable_module = obj
    _rename_outputs(model)
    if isinstance(obj, torch.export.ExportedProgram):
        pin_input_shapes(model, input_specs, path)
    choose_example_shapes(model, path)
    set_meta(model, "source_framework", "torch")
    set_meta(model, "source_format", fmt)
    set_meta(model, "input_layouts", {s.name: ("NCHW" if len(s.shape) == 4 else "-") for s in specs})
    check_ir_matches_source(model, _predictor(callable_module, [s.name for s in specs]), path)
    file = Path(weights) if weights else (Path(path) if not is_factory_spec(path) else split_factory(path)[0])
    return Source(path, "torch", fmt, model, file.stat().st_size, options, str(file))


class TorchReference:
    """The source model itself, run eagerly by torch in a child process."""

    def __init__(self, path: str, options: dict, device: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            from qconvert.backends.session import DeviceUnavailable

            raise DeviceUnavailable("torch sees no CUDA device")
        obj = load_module(path, options)
        if isinstance(obj, torch.export.ExportedProgram):
            self.names = list(obj.graph_signature.user_inputs)
            obj = obj.module()
        else:
            self.names = _input_names(obj)
        torch_device = "cuda" if device == "cuda" else "cpu"
        obj = obj.to(torch_device)
        self.device = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        self.run = _predictor(obj, self.names, torch_device)


def open_reference(path: str, options: dict, device: str, threads: int) -> TorchReference:
    return TorchReference(path, options, device, threads)

"""IR -> fx GraphModule -> TorchScript file (.pt), loadable with torch alone (torch.jit.load)."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from qconvert.backends.targets import EmitOptions
from qconvert.ir.metadata import get_meta

ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")
CPU_HALF_NOTE = ("{dtype} on CPU: fast only where the CPU has {dtype} matrix units (AMX, AVX512-FP16/BF16); "
                 "elsewhere kernels upcast and it runs slower than fp32; it is meant for CUDA (--device cuda)")


def quantized_engine(engine: str | None = None, mode: str = "int8") -> str:
    """The int8 engine weights are packed for (`--engine`). Static int8 defaults to oneDNN: fbgemm's
    depthwise kernel adds pairs of taps' u8×s8 products in int16 and saturates on full-range codes (a
    ReLU6 output, an image), oneDNN's does not, and it was the faster of the two on the digits MobileNet
    (bench/TORCH_ENGINES.md). Dynamic int8 keeps x86 (fbgemm), whose dynamic Linear quantizes
    activations to 7 bits and cannot saturate. qnnpack where neither is built in (ARM)."""
    import torch

    supported = torch.backends.quantized.supported_engines
    if engine is None:
        preferred = ("onednn", "x86") if mode == "int8" else ("x86", "onednn")
        engine = next((e for e in (*preferred, "qnnpack") if e in supported), "x86")
    if engine not in supported:
        raise ValueError(f"quantized engine {engine!r} is not in this torch build ({', '.join(supported)})")
    return engine


def build_module(model: ir.Model, mode: str, target: str, options: EmitOptions = EmitOptions(),
                 dtype_name: str = "float32", engine: str | None = None):
    """The emitted GraphModule and the facts about it (before scripting)."""
    import torch

    from qconvert.backends.torch.passes import prepare_for_torch
    from qconvert.backends.torch.program import build

    facts: dict = {"dtype": dtype_name}
    if mode == "dynamic":
        from qconvert.passes.smooth_quant import prepare_for_dynamic

        model = prepare_for_dynamic(model)  # the IR onnx-dynamic emits too: outlier channels smoothed
    model = prepare_for_torch(model, mode)  # the rewrites the emitters need, on the backend's own clone
    if mode in ("int8", "dynamic"):
        facts["engine"] = quantized_engine(engine, mode)
        torch.backends.quantized.engine = facts["engine"]  # packed weights are laid out for this engine
    module, builder, inputs, outputs = build(model, mode=mode, target=target, io_layout=options.io_layout,
                                             dtype=getattr(torch, dtype_name))
    facts["inputs"] = [p.to_dict() for p in inputs]
    facts["outputs"] = [p.to_dict() for p in outputs]
    if mode == "int8":
        # Inside "quantization" so the report keeps them: which ops ran int8 kernels, which fell back.
        facts["quantization"] = {**get_meta(model, "quantization", {}),
                                 "int8_kernels": dict(sorted(builder.int8_kernels.items())),
                                 "float_fallbacks": dict(sorted(builder.float_fallbacks.items()))}
    if mode == "dynamic":
        layers = sum(type(m).__name__ == "Linear" and "dynamic" in type(m).__module__ for m in module.modules())
        from qconvert.passes.smooth_quant import META_KEY

        facts["quantization"] = {"config": "dynamic int8 Linear weights (per output channel)", "layers": layers,
                                 "smoothed_layernorms": get_meta(model, META_KEY, {})}
    if dtype_name in ("float16", "bfloat16"):
        facts["note"] = CPU_HALF_NOTE.format(dtype=dtype_name)
    return module, facts


def save(module, path: Path) -> None:
    import torch

    scripted = torch.jit.script(module)
    torch.jit.save(scripted, str(path))


def emitter(mode: str, target: str, dtype_name: str = "float32"):
    def emit(model: ir.Model, path: Path, options: EmitOptions = EmitOptions()) -> dict:
        module, facts = build_module(model, mode, target, options, dtype_name, options.torch_engine)
        save(module, path)
        return facts

    emit.__name__ = f"emit_{target.replace('-', '_')}"
    return emit

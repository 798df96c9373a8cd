"""PyTorch targets: one emitter (IR -> fx GraphModule -> TorchScript), five modes."""

from qconvert.backends.targets import Quantization, Target, register
from qconvert.backends.torch.emit import emitter

OPENER = "qconvert.backends.torch.runtime:open_session"
REQUIRES = ("torch",)

# name, emitter mode, dtype, description, SQNR floor, quantization
TARGETS = [
    ("torch-fp32", "float", "float32", "a PyTorch program emitted from the IR (TorchScript)", 60.0, "none"),
    ("torch-fp16", "float", "float16", "fp16 weights and compute, fp32 inputs/outputs (meant for CUDA)", 30.0, "none"),
    ("torch-bf16", "float", "bfloat16", "bf16 weights and compute, fp32 inputs/outputs", 20.0, "none"),
    ("torch-int8", "int8", "float32", "static int8 lowering the IR's QDQ to torch's int8 kernels", 20.0, "static"),
    ("torch-dynamic", "dynamic", "float32", "dynamic int8 Linear layers (transformers)", 20.0, "dynamic"),
]

for name, mode, dtype, description, floor, quantization in TARGETS:
    register(Target(name=name, runtime="torch", description=description, suffix=".pt",
                    emit=emitter(mode, name, dtype), opener=OPENER, requires=REQUIRES, parity_floor_db=floor,
                    quantization=Quantization(quantization)))


def op_coverage() -> dict[str, frozenset[str]]:
    """The ops each target emits, for `qconvert ops`; torch-int8 also takes QuantizeLinear/DequantizeLinear."""
    from qconvert.backends.torch.registry import int8_kernel_ops, supported_ops

    ops = supported_ops()
    return {name: ops | (int8_kernel_ops() if mode == "int8" else frozenset()) for name, mode, *_ in TARGETS}

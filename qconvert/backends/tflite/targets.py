"""TFLite targets: one emitter (IR -> TF program -> TFLiteConverter), three float converter modes and two
full-integer ones lowering the IR's QDQ (quantized.py)."""

from qconvert.backends.targets import Quantization, Target, register
from qconvert.backends.tflite.emit import emitter
from qconvert.backends.tflite import quantized
from qconvert.backends.tflite.registry import supported_ops

OPENER = "qconvert.backends.tflite.runtime:open_session"
REQUIRES = ("tensorflow", "ai_edge_litert")

TARGETS = [
    ("tflite-fp32", "fp32", "float TFLite", 60.0, Quantization.NONE),
    ("tflite-fp16", "fp16", "float16 weights (the TFLite converter's fp16 mode)", 30.0, Quantization.NONE),
    ("tflite-dynamic", "dynamic", "int8 weights, float activations (dynamic range)", 20.0, Quantization.DYNAMIC),
]

for name, mode, description, floor, quantization in TARGETS:
    register(Target(name=name, runtime="LiteRT", description=description, suffix=".tflite",
                    emit=emitter(mode, name), opener=OPENER, requires=REQUIRES, parity_floor_db=floor,
                    quantization=quantization))

INTEGER_TARGETS = [
    ("tflite-int8", "int8", "full integer, int8 inputs/outputs: the IR's QDQ scales exactly"),
    ("tflite-uint8", "uint8", "full integer, uint8 inputs/outputs (edge accelerators' contract)"),
]

for name, io_dtype, description in INTEGER_TARGETS:
    register(Target(name=name, runtime="LiteRT", description=description, suffix=".tflite",
                    emit=emitter(io_dtype, name, quantized.convert), opener=OPENER, requires=REQUIRES,
                    parity_floor_db=20.0, quantization=Quantization.STATIC))

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def op_coverage() -> dict[str, frozenset[str]]:
    """The ops each target emits, for `qconvert ops` (a backend without this function runs every op)."""
    ops = supported_ops()
    coverage = {name: ops - QDQ_OPS for name, *_ in TARGETS}
    coverage.update({name: ops for name, _, _ in INTEGER_TARGETS})
    return coverage

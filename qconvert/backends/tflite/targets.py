"""TFLite float targets: one emitter (IR -> TF program -> TFLiteConverter), three converter modes."""

from qconvert.backends.targets import Target, register
from qconvert.backends.tflite.emit import emitter
from qconvert.backends.tflite.registry import supported_ops

OPENER = "qconvert.backends.tflite.runtime:open_session"
REQUIRES = ("tensorflow", "ai_edge_litert")

TARGETS = [
    ("tflite-fp32", "fp32", "float TFLite", 60.0),
    ("tflite-fp16", "fp16", "float16 weights (the TFLite converter's fp16 mode)", 30.0),
    ("tflite-dynamic", "dynamic", "int8 weights, float activations (dynamic range)", 20.0),
]

for name, mode, description, floor in TARGETS:
    register(Target(name=name, runtime="LiteRT", description=description, suffix=".tflite",
                    emit=emitter(mode, name), opener=OPENER, requires=REQUIRES, parity_floor_db=floor))


def op_coverage() -> dict[str, frozenset[str]]:
    """The ops each target emits, for `qconvert ops` (a backend without this function runs every op)."""
    ops = supported_ops()
    return {name: ops for name, _, _, _ in TARGETS}

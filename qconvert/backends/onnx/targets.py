"""ONNX targets: the float IR as a file, and its fp16 form."""

from qconvert.backends.onnx.emit import emit_fp16, emit_fp32
from qconvert.backends.targets import Target, register

OPENER = "qconvert.backends.onnx.runtime:open_session"

register(Target(
    name="onnx-fp32", runtime="onnxruntime", description="the float IR as a file",
    suffix=".onnx", emit=emit_fp32, opener=OPENER, requires=("onnxruntime",), parity_floor_db=60.0,
))
register(Target(
    name="onnx-fp16", runtime="onnxruntime",
    description="fp16 weights and compute, fp32 inputs/outputs, sensitive ops kept fp32",
    suffix=".onnx", emit=emit_fp16, opener=OPENER, requires=("onnxruntime",), parity_floor_db=30.0,
))

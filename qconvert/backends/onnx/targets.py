"""ONNX targets: the float IR as a file, its fp16 form, static int8 (QDQ) and dynamic int8."""

from qconvert.backends.onnx.emit import emit_dynamic, emit_fp16, emit_fp32, emit_qdq
from qconvert.backends.targets import Quantization, Target, register

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
register(Target(
    name="onnx-qdq", runtime="onnxruntime", description="static int8 in QDQ form: the IR's quantization exactly",
    suffix=".onnx", emit=emit_qdq, opener=OPENER, requires=("onnxruntime",), parity_floor_db=20.0,
    quantization=Quantization.STATIC,
))
register(Target(
    name="onnx-dynamic", runtime="onnxruntime", description="dynamic int8 for MatMul/Gemm (transformers)",
    suffix=".onnx", emit=emit_dynamic, opener=OPENER, requires=("onnxruntime",), parity_floor_db=20.0,
    quantization=Quantization.DYNAMIC,
))

"""Full-integer TFLite from the IR's QDQ: tflite-int8 (int8 inputs/outputs) and tflite-uint8 (uint8).

The IR's QuantizeLinear/DequantizeLinear pairs become fake-quant ops with exactly the IR's ranges
(ops/qdq.py); the TFLite converter, seeing fake-quant ops and no representative dataset, takes the
quantization-aware path: every tensor's scale and zero point comes from those ops, weights are
quantized per channel from the IR's already-quantized values (same scales), bias int32 with
s_in·s_w. Nothing is calibrated again. After conversion the file is read back and checked:

- every activation scale in the file equals the IR's (within float rounding), else the emit fails;
- every op runs integer, apart from the layers mixed precision kept float (reported by name);
- QUANTIZE/DEQUANTIZE only at the inputs and outputs.

Tensor names are then stripped from the file (strip_names), as deployment artifacts are.

The I/O contract (each input's and output's dtype, scale, zero point) goes into the facts, which the
LiteRT session uses to quantize feeds and dequantize outputs, and beside the artifact as
``<artifact>.io.json`` (written by qconvert.pipeline.emit with the artifact).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx_ir as ir

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.int8_lowering import lower_for_tflite
from qconvert.backends.tflite.int8_support import check_integer_ops

IO_DTYPES = {"int8": np.int8, "uint8": np.uint8}
FLOAT_TYPES = ("FLOAT32", "FLOAT16")
SCALE_RTOL = 1e-5


def _tensorflow():
    try:
        from qconvert.quiet_imports import import_tensorflow
    except ImportError:  # before the shared quiet-import module
        from qconvert.backends.tflite.quiet import import_tensorflow
    return import_tensorflow()


def ir_scales(model: ir.Model) -> dict[str, tuple[float, int]]:
    """The (scale, zero point) of each activation the IR quantizes, by the quantized value's name.

    Zero points are on int8 levels, as the file holds its inner tensors (a uint8 IR's minus 128)."""
    found = {}
    for node in model.graph:
        if node.op_type != "QuantizeLinear":
            continue
        scale = np.asarray(node.inputs[1].const_value.numpy()).reshape(-1)
        zero_point = (np.asarray(node.inputs[2].const_value.numpy()).reshape(-1)
                      if len(node.inputs) > 2 and node.inputs[2] is not None else np.full(1, 128, np.uint8))
        shift = 128 if zero_point.dtype == np.uint8 else 0
        found[node.inputs[0].name] = (float(scale[0]), int(zero_point[0]) - shift)
    return found


WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def ir_weight_scales(model: ir.Model) -> list[np.ndarray]:
    """The scales of the IR's int8 weights (DequantizeLinear of int8 constants), one array per weight."""
    found = []
    for node in model.graph:
        data = node.inputs[0].const_value if node.op_type == "DequantizeLinear" else None
        if data is not None and data.dtype == ir.DataType.INT8:
            found.append(np.asarray(node.inputs[1].const_value.numpy(), np.float64).reshape(-1))
    return found


def weight_scales_match(inspection: dict, model: ir.Model) -> bool:
    """Whether every integer weight in the file has one of the IR's weight scale vectors."""
    wanted = ir_weight_scales(model)
    for op in inspection["ops"]:
        if op["op"] not in WEIGHTED_OPS or op["float"] or len(op["inputs"]) < 2:
            continue
        scales = np.asarray(inspection["tensors"][op["inputs"][1]]["scales"], np.float64)
        if not any(w.shape == scales.shape and np.allclose(w, scales, rtol=1e-5) for w in wanted):
            return False
    return True


def per_channel_weights(model: ir.Model) -> bool:
    """Whether the IR's int8 weights carry one scale per output channel (the default) or one per tensor."""
    for node in model.graph:
        data = node.inputs[0].const_value if node.op_type == "DequantizeLinear" else None
        if data is not None and data.dtype == ir.DataType.INT8:
            return np.asarray(node.inputs[1].const_value.numpy()).size > 1 or data.shape[0] == 1
    return True


def float_layers(model: ir.Model) -> list[str]:
    from qconvert.ir.metadata import get_meta

    meta = get_meta(model, "quantization") or {}
    return list(meta.get("float_layers") or [])


def convert(model: ir.Model, io_dtype: str, options: EmitOptions, target: str) -> tuple[bytes, dict]:
    _tensorflow()  # quietly, before program.py imports it
    from qconvert.backends.tflite.emit import converter_for
    from qconvert.backends.tflite.program import build_program
    from qconvert.backends.tflite.signature import restore_io
    from qconvert.backends.tflite.sparse import smaller_encoding

    if not any(node.op_type == "QuantizeLinear" for node in model.graph):
        raise ValueError(f"{target} lowers the IR's QDQ; this IR has no QuantizeLinear (calibrate first)")
    kept_float = float_layers(model)
    model = lower_for_tflite(model)
    check_integer_ops(model, target, float_layers=kept_float)
    program = build_program(model, options.io_layout, target)

    def convert_once(sparse: bool) -> bytes:
        converter = converter_for(program)
        configure(converter, io_dtype, allow_float=bool(kept_float), sparse=sparse)
        if not per_channel_weights(model):
            # Dense layers then keep the IR's one scale (conv weights keep it by their fake-quant op,
            # ops/conv.py; weight_scales_match_ir checks every weight).
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        with warnings.catch_warnings():  # the input's statistics are its fake-quant op's range
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            flatbuffer = converter.convert()
        # Inputs and outputs in the IR's order under its names, as the float files (the converter sorts them).
        return restore_io(flatbuffer, program.inputs, program.outputs)

    # pruned weights: TFLite's sparse encoding where the file is smaller (sparse.py)
    flatbuffer, sparse_encoding = smaller_encoding(model, convert_once)
    facts = program.facts()
    inspection = inspect_flatbuffer(flatbuffer)
    facts["io"] = io_contract(inspection, program, io_dtype)
    scales = check_scales(inspection, ir_scales(model), target)
    float_ops = [op for op in inspection["ops"] if op["float"]]
    if float_ops and not kept_float:
        names = sorted({op["op"] for op in float_ops})
        # check_integer_ops found every IR op quantized: an emitter wrote one as several TensorFlow ops
        # with nothing quantized in between, which the converter leaves float.
        raise ValueError(f"{target}: ops left in float: {', '.join(names)} (an op the IR quantizes was emitted "
                         f"as several TensorFlow ops the converter could not quantize)")
    inner = inner_requantize(inspection)
    if inner and not kept_float:  # around layers kept float they are the point
        raise ValueError(f"{target}: QUANTIZE/DEQUANTIZE inside the model: {', '.join(inner[:5])}")
    flatbuffer = strip_names(flatbuffer)
    facts["quantization"] = {
        "io_dtype": io_dtype,
        "float_layers": kept_float,
        "float_ops": sorted(op["op"] for op in float_ops),
        "inner_quantize_ops": len(inner),
        "ops": len(inspection["ops"]),
        "scales_checked": scales["checked"],
        "weight_scales_match_ir": weight_scales_match(inspection, model),
        "fixed_by_kernel": scales["fixed_by_kernel"],
    }
    if sparse_encoding is not None:
        facts["quantization"]["sparse_encoding"] = sparse_encoding
    return flatbuffer, facts


def configure(converter, io_dtype: str, allow_float: bool = False, sparse: bool = False) -> None:
    """Integer-only builtins with integer I/O; float builtins too only where layers were kept float.
    `sparse`: weights with zeros in TFLite's sparse encoding too."""
    tf = _tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT] + ([tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else [])
    # TFLITE_BUILTINS_INT8 would demand a representative dataset and calibrate again; with fake-quant
    # ops and builtins the converter takes the quantization-aware path (the IR's ranges). That every op
    # came out integer is checked on the file afterwards (convert()).
    del allow_float
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = tf.as_dtype(IO_DTYPES[io_dtype])
    converter.inference_output_type = tf.as_dtype(IO_DTYPES[io_dtype])


# --- reading the file back ------------------------------------------------------------------------

def inspect_flatbuffer(flatbuffer: bytes) -> dict:
    """Tensors (dtype, scales, zero points) and ops (type, whether it computes in float) of a .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    tensors = {}
    for detail in interpreter.get_tensor_details():
        params = detail.get("quantization_parameters") or {}
        tensors[detail["index"]] = {
            "name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
            "scales": [float(s) for s in np.asarray(params.get("scales", [])).reshape(-1)],
            "zero_points": [int(z) for z in np.asarray(params.get("zero_points", [])).reshape(-1)],
        }
    ops = []
    for op in interpreter._get_ops_details():
        inputs = [tensors[i] for i in op["inputs"] if i >= 0]
        outputs = [tensors[i] for i in op["outputs"] if i >= 0]
        computes_float = any(t["dtype"].startswith("float") for t in outputs)
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            computes_float = False  # converting at the boundary, not computing
        ops.append({"op": op["op_name"], "float": computes_float,
                    "inputs": [int(i) for i in op["inputs"]], "outputs": [int(i) for i in op["outputs"]],
                    "input_dtypes": [t["dtype"] for t in inputs], "output_dtypes": [t["dtype"] for t in outputs]})
    signature = interpreter.get_signature_list()
    runner = interpreter.get_signature_runner()
    io = {"inputs": {k: v["index"] for k, v in runner.get_input_details().items()},
          "outputs": {k: v["index"] for k, v in runner.get_output_details().items()}}
    return {"tensors": tensors, "ops": ops, "signature": signature, "io": io}


def file_io_contract(flatbuffer: bytes) -> dict:
    """The I/O contract of any integer .tflite, from its signature (e.g. one the converter quantized)."""
    inspection = inspect_flatbuffer(flatbuffer)

    def ports(kind: str) -> list[dict]:
        found = []
        for signature, index in inspection["io"][kind].items():
            tensor = inspection["tensors"][index]
            found.append({"name": signature, "signature": signature, "dtype": tensor["dtype"],
                          "scale": tensor["scales"][0] if tensor["scales"] else None,
                          "zero_point": tensor["zero_points"][0] if tensor["zero_points"] else None})
        return found

    return {"inputs": ports("inputs"), "outputs": ports("outputs")}


def strip_names(flatbuffer: bytes) -> bytes:
    """The file without tensor names and description (a deployment artifact; 0.5% of the UNet's int8 file).

    Signatures (the I/O names the session and the I/O contract use), metadata and every tensor stay.
    The names were read for the checks above; ``tensorflow.lite.tools.flatbuffer_utils.strip_strings``
    would also drop the signatures.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    model.description = None
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def inner_requantize(inspection: dict) -> list[str]:
    """QUANTIZE/DEQUANTIZE ops that neither read a model input nor write a model output."""
    inputs, outputs = set(inspection["io"]["inputs"].values()), set(inspection["io"]["outputs"].values())
    inner = []
    for op in inspection["ops"]:
        if op["op"] not in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if not (set(op["inputs"]) & inputs or set(op["outputs"]) & outputs):
            inner.append(f"{op['op']}({inspection['tensors'][op['outputs'][0]]['name']})")
    return inner


def io_contract(inspection: dict, program, io_dtype: str) -> dict:
    """Each artifact input and output: dtype, scale and zero point (real = scale · (q - zero_point))."""
    def port(signature: str, index: int, ir_name: str) -> dict:
        tensor = inspection["tensors"][index]
        return {"name": ir_name, "signature": signature, "dtype": tensor["dtype"],
                "scale": tensor["scales"][0] if tensor["scales"] else None,
                "zero_point": tensor["zero_points"][0] if tensor["zero_points"] else None}

    return {
        "io_dtype": io_dtype,
        "inputs": [port(p.signature, inspection["io"]["inputs"][p.signature], p.name) for p in program.inputs],
        "outputs": [port(p.signature, inspection["io"]["outputs"][p.signature], p.name) for p in program.outputs],
    }


# Kernels whose int8 output quantization TFLite fixes, whatever the model says (1/256 for [0, 1], ...).
FIXED_OUTPUT = {"LOGISTIC", "SOFTMAX", "LOG_SOFTMAX", "TANH"}


def check_scales(inspection: dict, wanted: dict[str, tuple[float, int]], target: str) -> dict:
    """Every activation's (scale, zero point) in the file is one of the IR's: the fake-quant ranges won.

    Activations are the ops' outputs and the model's inputs; weights (per channel) and int32 bias are
    derived from the IR's quantized values and checked by the tests. The outputs of kernels with a fixed
    output quantization are checked too (the IR must carry that fixed scale, quant.plan.FIXED_OUTPUT)
    and listed. Returns {"checked": n, "fixed_by_kernel": [...]}.
    """
    grids = sorted(set(wanted.values()))
    fixed, checked = [], 0
    activations = {i: None for i in inspection["io"]["inputs"].values()}
    for op in inspection["ops"]:
        for index in op["outputs"]:
            activations[index] = op["op"]
    for index, op in activations.items():
        tensor = inspection["tensors"][index]
        if tensor["dtype"] not in ("int8", "uint8") or len(tensor["scales"]) != 1:
            continue
        if op == "QUANTIZE" and index in inspection["io"]["outputs"].values():
            continue  # the int8 -> uint8 output conversion keeps its producer's scale (checked there)
        scale = tensor["scales"][0]
        zero_point = tensor["zero_points"][0] - (128 if tensor["dtype"] == "uint8" else 0)
        checked += 1
        known = any(abs(s - scale) <= SCALE_RTOL * s and z == zero_point for s, z in grids)
        name = tensor["name"].split(";")[0]
        if op in FIXED_OUTPUT:
            fixed.append(f"{op} {name}: scale {scale:g}, zero point {tensor['zero_points'][0]}")
            if not known:
                raise ValueError(f"{target}: {op} output {name} has the scale its kernel fixes ({scale:g}, zero "
                                 f"point {zero_point}), which the IR's QDQ does not give it")
        elif not known:
            raise ValueError(f"{target}: tensor {tensor['name']} has scale {scale:g}, zero point {zero_point}, "
                             f"none of the IR's (the converter re-derived a range)")
    return {"checked": checked, "fixed_by_kernel": fixed}

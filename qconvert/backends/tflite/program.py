"""The IR as a TensorFlow program: a tf.Module whose tf.function walks the graph through the registry.

Inputs and outputs get the layout the artifact promises (the source's, or --io-layout); in between,
every op emitter picks the arrangement its TFLite kernel wants (channels-last for images) and the
value table inserts a transpose only where a consumer needs an arrangement its producer did not give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.context import EmitContext, Held, ValueTable, carried, tf_dtype
from qconvert.backends.tflite.fold import try_fold
from qconvert.backends.tflite.registry import CASTABLE, DTYPES, EMITTERS, supported_ops
from qconvert.errors import UnsupportedOpError
from qconvert.ir.metadata import input_layouts

PERM_TO_NHWC = (0, 2, 3, 1)
PERM_TO_NCHW = (0, 3, 1, 2)


@dataclass
class Port:
    """One artifact input or output: its IR name, its name in the signature, and its arrangement."""

    name: str
    signature: str
    perm: layout.Perm  # artifact tensor = transpose(IR value, perm)
    layout: str  # NCHW | NHWC | - (what the artifact's tensor is)
    dtype: str
    ir_layout: str = "-"  # what the IR's tensor is
    ir_dtype: str = ""  # the IR's dtype where the artifact narrows it (int64 is carried as int32)

    def fact(self) -> dict:
        return {"name": self.name, "signature": self.signature, "perm": list(self.perm),
                "layout": self.layout, "dtype": self.dtype, "ir_dtype": self.ir_dtype or self.dtype}


@dataclass
class Program:
    module: tf.Module
    function: object  # the concrete function the converter takes
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)

    def facts(self) -> dict:
        return {"inputs": [p.fact() for p in self.inputs], "outputs": [p.fact() for p in self.outputs]}


def _port_perm(ir_layout: str, wanted: str | None) -> tuple[layout.Perm | None, str]:
    """The perm from the IR's tensor to the artifact's, and the artifact's layout name."""
    if ir_layout not in ("NCHW", "NHWC") or wanted is None or wanted.upper() == ir_layout:
        return None, ir_layout
    return (PERM_TO_NHWC if ir_layout == "NCHW" else PERM_TO_NCHW), wanted.upper()


def _signature_name(name: str, index: int, kind: str, taken: set[str]) -> str:
    """TF signature keys must look like op names; others get a cleaned or numbered name."""
    clean = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).lstrip("_./-") or f"{kind}_{index}"
    if not re.match(r"[A-Za-z]", clean):
        clean = f"{kind}_{clean}"
    while clean in taken:
        clean = f"{clean}_{index}"
    taken.add(clean)
    return clean


def _check_io_dtypes(model: ir.Model, target: str) -> None:
    """A graph input or output of a dtype no TFLite tensor carries (bfloat16, float8, int4...) is refused."""
    for value in [*model.graph.inputs, *model.graph.outputs]:
        if value.is_initializer() or value.dtype is None or carried(value.dtype) in CASTABLE:
            continue
        uses = [node for node, _ in value.uses()]
        node = uses[0] if uses else value.producer()
        raise UnsupportedOpError(node.op_type if node else "Identity", (node.name or "") if node else "", target,
                                 f"{value.dtype.name.lower()} graph input/output: no TFLite tensor type carries it")


def plan_ports(model: ir.Model, io_layout: str | None) -> tuple[list[Port], list[Port]]:
    """Artifact inputs and outputs; an output's perm is settled once its rank is known (tracing)."""
    layouts = input_layouts(model)
    image_layouts = [v for v in layouts.values() if v in ("NCHW", "NHWC")]
    # Outputs carry no layout record; a 4-D output is taken to share the source's image layout.
    output_layout = image_layouts[0] if image_layouts else "NCHW"
    taken: set[str] = set()
    inputs = []
    for index, value in enumerate(v for v in model.graph.inputs if not v.is_initializer()):
        perm, name = _port_perm(layouts[value.name], io_layout)
        inputs.append(Port(value.name, _signature_name(value.name, index, "input", taken),
                           perm or layout.identity(len(value.shape)), name, tf_dtype(value.dtype).name,
                           layouts[value.name], value.dtype.numpy().name))
    outputs = [Port(value.name, _signature_name(value.name, index, "output", taken), (), output_layout, "",
                    output_layout, value.dtype.numpy().name if value.dtype is not None else "")
               for index, value in enumerate(model.graph.outputs)]
    return inputs, outputs


def _settle_output(port: Port, rank: int, io_layout: str | None) -> None:
    perm, name = _port_perm(port.ir_layout if rank == 4 else "-", io_layout)
    port.perm, port.layout = perm or layout.identity(rank), name


def _input_spec(value: ir.Value, port: Port) -> tf.TensorSpec:
    dims = [d if isinstance(d, int) else None for d in value.shape]
    return tf.TensorSpec([dims[axis] for axis in port.perm], tf.as_dtype(port.dtype), name=port.signature)


def emit_node(node: ir.Node, values: ValueTable, target: str, opset: int) -> None:
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(f"{node.domain}::{node.op_type}", node.name or "", target)
    inputs = [values.held[v.name] if v is not None else None for v in node.inputs]
    if inputs and all(h is None or h.is_const for h in inputs):
        folded = try_fold(node, [None if h is None else h.tensor for h in inputs], opset)
        if folded is not None:
            for value, array in zip(node.outputs, folded):
                values.held[value.name] = Held(array, layout.identity(array.ndim))
            return
    emitter = EMITTERS.get(node.op_type)
    if emitter is None:
        raise UnsupportedOpError(node.op_type, node.name or "", target)
    check_dtypes(node, inputs, target)
    emitter(EmitContext(node, values, target, opset))
    for value in node.outputs:
        if value is not None and value.name in values.held:
            _pin_static_shape(value, values.held[value.name])


def _pin_static_shape(value: ir.Value, held: Held) -> None:
    """Give TensorFlow the dims the IR knows where its own inference lost them: a Reshape or Expand to a
    shape computed at run time (from the batch) leaves even the rank unknown, and TFLite then cannot
    lower a Conv2D that reads it. Written as a reshape to the known dims, with -1 for a single unknown
    one (the batch) or the tensor's own run-time dims for several: the converter re-derives shapes from
    the ops (set_shape would not survive, and it has no kernel for EnsureShape) and reads both forms.
    Nothing is done where the dims disagree (the IR's inference may be wrong where TensorFlow's is
    right)."""
    if held.is_const or value.shape is None or len(value.shape) != held.rank:
        return
    ir_dims = [d if isinstance(d, int) else None for d in value.shape]
    current = held.tensor.shape
    known = tf.TensorShape([ir_dims[axis] for axis in held.perm])
    if current.rank is not None and (not current.is_compatible_with(known) or current.merge_with(known) == current):
        return
    dims = known.as_list() if current.rank is None else current.merge_with(known).as_list()
    if dims.count(None) <= 1:
        held.tensor = tf.reshape(held.tensor, [-1 if d is None else d for d in dims])
    else:
        runtime = tf.shape(held.tensor)
        held.tensor = tf.reshape(held.tensor, tf.stack([runtime[i] if d is None else d for i, d in enumerate(dims)]))


def check_dtypes(node: ir.Node, inputs: list[Held | None], target: str) -> None:
    """Refuse dtypes the op's builtin kernels do not take (see registry.DTYPES), before emitting."""
    allowed = DTYPES.get(node.op_type)
    if allowed is None:
        return
    for index, (value, held) in enumerate(zip(node.inputs, inputs)):
        if held is None or held.is_const:
            continue
        # What TensorFlow holds is the truth; an IR value without a recorded type still has one there.
        name = held.tensor.dtype.name
        if name not in allowed and not (index > 0 and name == "int32"):  # int32 shapes/indices go anywhere
            raise UnsupportedOpError(node.op_type, node.name or "", target,
                                     f"{name} input: TFLite's builtin kernels for it "
                                     f"take {'/'.join(sorted(allowed))}")
    for value in node.outputs:
        if value is not None and value.dtype is not None and carried(value.dtype) not in CASTABLE:
            raise UnsupportedOpError(node.op_type, node.name or "", target,
                                     f"{value.dtype.name.lower()} output: no TFLite tensor type carries it")


def _check_not_empty(model: ir.Model, held: Held, name: str, target: str) -> None:
    """LiteRT cannot hand back a tensor without elements: an output known to be empty is refused."""
    shape = list(held.tensor.shape) if held.is_const else held.tensor.shape.as_list()
    if 0 in shape:
        producer = next((v.producer() for v in model.graph.outputs if v.name == name), None)
        raise UnsupportedOpError(producer.op_type if producer else "Identity", (producer.name or "") if producer else "",
                                 target, "an empty output tensor (LiteRT returns none)")


def build_program(model: ir.Model, io_layout: str | None, target: str) -> Program:
    supported_ops()  # imports every op family
    _check_io_dtypes(model, target)
    inputs, outputs = plan_ports(model, io_layout)
    graph_inputs = {v.name: v for v in model.graph.inputs}
    opset = model.opset_imports.get("", 17)

    def run(*args):
        values = ValueTable()
        for value in model.graph.initializers.values():
            values.held[value.name] = Held(np.asarray(value.const_value.numpy()),
                                           layout.identity(len(value.const_value.shape)))
        for port, tensor in zip(inputs, args):
            values.held[port.name] = Held(tensor, port.perm)
        for node in model.graph:
            emit_node(node, values, target, opset)
        results = {}
        for port in outputs:
            _check_not_empty(model, values.held[port.name], port.name, target)
            _settle_output(port, values.held[port.name].rank, io_layout)
            # tf.identity keeps two outputs of one tensor apart.
            results[port.signature] = tf.identity(values.arrange(port.name, port.perm))
            port.dtype = results[port.signature].dtype.name
        return results

    module = tf.Module()
    signature = [_input_spec(graph_inputs[p.name], p) for p in inputs]
    module.serve = tf.function(run, input_signature=signature, autograph=False)
    return Program(module, module.serve.get_concrete_function(), inputs, outputs)

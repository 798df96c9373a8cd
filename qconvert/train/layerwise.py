"""Layer-by-layer post-training optimisation of a QDQ IR (AdaRound, bias correction, the weight-scale search):
what they share.

- `quantized_layers` finds the Conv, ConvTranspose, Gemm and MatMul nodes whose weight is an integer
  initializer's DequantizeLinear, with the float weight and bias of the float IR they were quantized from
  (qconvert.passes.prepare_for_int8's output: its initializer names are the integer ones without
  "_quantized").
- `LayerFunction` computes one layer as the torch backend emits it: a one-node IR (the layer and its fused
  Relu/Clip) built in training mode, whose weight and bias are Parameters replaced per call
  (torch.func.functional_call). One code path serves every attribute combination the emitters handle:
  grouped and depthwise Conv, ConvTranspose, Gemm's transB, MatMul by a constant.
- `Capture` is the program a layer's input is computed by: the QDQ IR's (its function as the torch backend
  computes it, integer arithmetic included) or the float IR's. Its `tensor` runs it up to one tensor, the
  plain reference that LayerInputs' one pass is tested against.
- `optimise_layers` is the loop all of them run: a copy of the QDQ IR, each layer changed in place in
  graph order, and the facts the report shows (per layer its record and seconds, or why it was skipped).
- `LayerInputs` gives each layer's input from one run of the QDQ IR's program that takes in each layer's
  new weights as it goes (what a Capture gives, without rebuilding and re-running the program per layer),
  or from one run of the float IR's (`LayerStreams`: both, for AdaRound and bias correction).

The layers are processed in graph (topological) order, each one's input taken from the partially optimised
program, so a layer sees, and can compensate, the errors of the layers before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import onnx_ir as ir
import torch
import torch.fx as fx
from torch import Tensor

from qconvert.backends.torch.program import build
from qconvert.ir.values import copy_model
from qconvert.quant.plan import FUSED_ACTIVATIONS, WEIGHTED_OPS, layer_name
from qconvert.train.fake_quant import weight_range

TARGET = "layerwise"  # the name an UnsupportedOpError gives these programs
# LayerInputs holds about LIVE_TENSORS tensors per sample at once (a layer's input and the values around it);
# stream_samples keeps them within STREAM_BYTES
STREAM_BYTES = 1 << 31
LIVE_TENSORS = 4
Feeds = dict[str, np.ndarray]


@dataclass
class QuantizedLayer:
    node: ir.Node  # in the QDQ IR
    name: str
    codes: ir.Value  # the integer weight initializer
    scale: np.ndarray  # per tensor () or per channel
    zero: np.ndarray
    axis: int  # the weight's quantization axis (DequantizeLinear's)
    low: int
    high: int
    weight: np.ndarray  # the float weight (float IR)
    bias: ir.Value | None  # the int32 bias initializer (or a float one), None without a bias
    bias_float: np.ndarray | None  # the float IR's bias
    fused: ir.Node | None  # the Relu/Clip after it, part of the layer's int8 unit
    float_input: str | None  # the layer's input in the float IR, when its node is found there by name

    def shaped(self, array: np.ndarray) -> np.ndarray:
        """A per-channel array (scale, zero point) shaped to broadcast against the weight."""
        if array.ndim == 0:
            return array
        shape = [1] * self.weight.ndim
        shape[self.axis % self.weight.ndim] = array.size
        return array.reshape(shape)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """The float weight the codes stand for, in float32 as DequantizeLinear computes it."""
        s, z = self.shaped(self.scale).astype(np.float32), self.shaped(self.zero).astype(np.float32)
        return ((codes.astype(np.float32) - z) * s).astype(np.float32)

    @property
    def input(self) -> str:
        """The layer's input in the QDQ IR (what it quantizes at run time)."""
        return self.node.inputs[0].name

    @property
    def output_axis(self) -> int:
        """The output's channel axis: 1 for convolutions (NCHW), the last for Gemm and MatMul."""
        return 1 if self.node.op_type in ("Conv", "ConvTranspose") else -1


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


def _constant(value: ir.Value | None) -> np.ndarray | None:
    if value is None or value.is_graph_input():
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _dequantized_initializer(value: ir.Value | None, model: ir.Model) -> ir.Node | None:
    """The DequantizeLinear producing `value` from an integer initializer of `model`, if that is what it is."""
    producer = value.producer() if value is not None else None
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    source = producer.inputs[0]
    if source is None or model.graph.initializers.get(source.name) is not source or source.const_value is None:
        return None
    return producer


def _fused_activation(node: ir.Node, model: ir.Model) -> ir.Node | None:
    """The Relu or Clip (constant bounds) that is the output's only reader: int8 kernels fuse it."""
    output = node.outputs[0]
    uses = list(output.uses())
    if len(uses) != 1 or output.is_graph_output():
        return None
    user, index = uses[0]
    if user.op_type not in FUSED_ACTIVATIONS or index != 0:
        return None
    if user.op_type == "Clip" and any(v is not None and _constant(v) is None for v in user.inputs[1:]):
        return None
    return user


def quantized_layers(qdq: ir.Model, float_model: ir.Model) -> list[QuantizedLayer | Skipped]:
    """The weighted layers of the QDQ IR in graph order, each a QuantizedLayer or the reason it is not."""
    floats = {name: value.const_value.numpy() for name, value in float_model.graph.initializers.items()
              if value.const_value is not None and value.const_value.numpy().dtype.kind == "f"}
    float_nodes = {node.name: node for node in float_model.graph if node.name}
    found: list[QuantizedLayer | Skipped] = []
    for node in qdq.graph:
        if node.op_type not in WEIGHTED_OPS or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        name = layer_name(node)
        dequantize = _dequantized_initializer(node.inputs[1], qdq)
        if dequantize is None or node.inputs[0] is None or _constant(node.inputs[0]) is not None:
            found.append(Skipped(name, node.op_type, "no quantized weight"))
            continue
        codes = dequantize.inputs[0]
        readers = [n for n, _ in codes.uses()] + [n for n, _ in dequantize.outputs[0].uses()]
        if len(readers) != 2:
            found.append(Skipped(name, node.op_type, "weight shared with another layer"))
            continue
        weight = floats.get(codes.name.removesuffix("_quantized"))
        if weight is None or weight.shape != tuple(codes.const_value.shape.dims):
            found.append(Skipped(name, node.op_type, "no float weight of its name in the float IR"))
            continue
        scale = _constant(dequantize.inputs[1])
        zero = _constant(dequantize.inputs[2]) if len(dequantize.inputs) > 2 and dequantize.inputs[2] is not None \
            else np.zeros((), np.int64)
        dtype = codes.const_value.dtype
        blocked = "block_size" in dequantize.attributes and dequantize.attributes["block_size"].value
        if scale is None or zero is None or blocked:
            found.append(Skipped(name, node.op_type, "weight scale or zero point not a constant"))
            continue
        try:
            low, high = weight_range(dtype, zero)
        except KeyError:
            found.append(Skipped(name, node.op_type, f"{dtype.name} weights"))
            continue
        axis = dequantize.attributes["axis"].value if "axis" in dequantize.attributes else 1
        bias, bias_float = _bias(node, qdq, floats)
        float_node = float_nodes.get(node.name)
        found.append(QuantizedLayer(
            node, name, codes, scale.astype(np.float32), zero, int(axis), low, high, weight.astype(np.float32),
            bias, bias_float, _fused_activation(node, qdq),
            float_node.inputs[0].name if float_node is not None and float_node.op_type == node.op_type else None))
    return found


def _bias(node: ir.Node, qdq: ir.Model, floats: dict[str, np.ndarray]) -> tuple[ir.Value | None, np.ndarray | None]:
    """The layer's bias: its int32 initializer (or float initializer) and the float IR's value."""
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(node.inputs) < 3 or node.inputs[2] is None:
        return None, None
    dequantize = _dequantized_initializer(node.inputs[2], qdq)
    if dequantize is not None:
        codes = dequantize.inputs[0]
        original = floats.get(codes.name.removesuffix("_quantized"))
        return codes, original.astype(np.float32) if original is not None and original.ndim == 1 else None
    value = node.inputs[2]
    if qdq.graph.initializers.get(value.name) is value and value.const_value is not None and \
            value.const_value.numpy().ndim == 1:
        return value, value.const_value.numpy().astype(np.float32)
    return None, None


def dequantize_of(integers: ir.Value) -> ir.Node | None:
    """The DequantizeLinear that reads the integer initializer `integers`, else None."""
    return next((n for n, i in integers.uses() if n.op_type == "DequantizeLinear" and i == 0), None)


def bias_dequantized(layer: QuantizedLayer) -> np.ndarray | None:
    """The bias the QDQ IR adds (int32 codes times s_x·s_w, or a float bias as it is)."""
    if layer.bias is None:
        return None
    array = layer.bias.const_value.numpy()
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    scale = _constant(dequantize_of(layer.bias).inputs[1]).astype(np.float32)
    return (array.astype(np.float32) * scale).astype(np.float32)


class LayerFunction:
    """One layer (and its fused activation) as the torch backend emits it, with weight and bias given per call:
    ``f(x, w, b)`` -> (pre-activation output, output)."""

    def __init__(self, layer: QuantizedLayer, input_shape: tuple[int, ...], opset: int):
        node = layer.node
        x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape(["N", *input_shape[1:]]))
        w = ir.Value(name="w", const_value=ir.tensor(layer.weight, name="w"))
        inputs, initializers = [x, w], [w]
        self.has_bias = len(node.inputs) > 2 and node.inputs[2] is not None
        if self.has_bias:
            bias = bias_dequantized(layer) if layer.bias is not None else _constant(node.inputs[2])
            if bias is None:
                raise ValueError(f"{layer.name}: its bias is not a constant")
            b = ir.Value(name="b", const_value=ir.tensor(bias.astype(np.float32), name="b"))
            inputs.append(b)
            initializers.append(b)
        copy = ir.Node("", node.op_type, inputs, attributes=_attributes(node), name="layer")
        copy.outputs[0].name, copy.outputs[0].type = "y", ir.TensorType(ir.DataType.FLOAT)
        nodes, outputs = [copy], [copy.outputs[0]]
        if layer.fused is not None:
            act_inputs = [copy.outputs[0]]
            for i, value in enumerate(layer.fused.inputs[1:], start=1):
                if value is None:
                    act_inputs.append(None)
                    continue
                bound = ir.Value(name=f"bound{i}", const_value=ir.tensor(_constant(value), name=f"bound{i}"))
                initializers.append(bound)
                act_inputs.append(bound)
            act = ir.Node("", layer.fused.op_type, act_inputs, attributes=_attributes(layer.fused), name="act")
            act.outputs[0].name, act.outputs[0].type = "y_act", ir.TensorType(ir.DataType.FLOAT)
            nodes.append(act)
            outputs.append(act.outputs[0])
        graph = ir.Graph([x], outputs, nodes=nodes, initializers=initializers, opset_imports={"": opset})
        module, builder, _, _ = build(ir.Model(graph, ir_version=8), mode="train", target=TARGET)
        module.train(False)
        for p in module.parameters():
            p.requires_grad_(False)
        names = {name: attr for attr, name in builder.parameters.items()}
        self.module, self.weight_attr, self.bias_attr = module, names["w"], names.get("b")

    def to(self, device: torch.device) -> LayerFunction:
        self.module.to(device)
        return self

    def __call__(self, x: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor]:
        replaced = {self.weight_attr: w}
        if self.bias_attr is not None and b is not None:
            replaced[self.bias_attr] = b
        results = torch.func.functional_call(self.module, replaced, (x,))
        if isinstance(results, (tuple, list)):
            return results[0], results[1]
        return results, results


def _attributes(node: ir.Node) -> list[ir.Attr]:
    return [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values()]


class _Stop(Exception):
    pass


class _Recorder(fx.Interpreter):
    """Runs the program until `node` is computed, and keeps its value."""

    def __init__(self, module: fx.GraphModule, node: fx.Node):
        super().__init__(module)
        self.node, self.value = node, None

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if n is self.node:
            self.value = result
            raise _Stop
        return result


class Capture:
    """A program (the QDQ IR's integer function, or the float IR's) that gives named IR tensors on feeds."""

    def __init__(self, model: ir.Model, device: torch.device):
        module, self.builder, inputs, _ = build(model, mode="float", target=TARGET)
        self.module = module.to(device).eval()
        self.inputs, self.device = [p.name for p in inputs], device

    def tensor(self, name: str, feeds: Feeds, batch: int) -> Tensor:
        """The IR tensor `name` on the samples of `feeds`, the program run up to it in batches of `batch`."""
        node = self.builder.values.get(name)
        if not isinstance(node, fx.Node):
            raise ValueError(f"tensor {name} is not computed by the program")
        parts = []
        count = len(next(iter(feeds.values())))
        with torch.no_grad():
            for start in range(0, count, batch):
                args = [torch.from_numpy(np.ascontiguousarray(feeds[n][start:start + batch])).to(self.device)
                        for n in self.inputs]
                recorder = _Recorder(self.module, node)
                try:
                    recorder.run(*args)
                except _Stop:
                    pass
                parts.append(recorder.value.detach().float().contiguous())
        return torch.cat(parts)


class LayerInputs:
    """A program run once over the calibration samples, stopping at each of the tensors `names` (the
    layers' inputs) in graph order: `of(name)` gives it; for a QDQ IR's program, `update(layer)` then puts
    the layer's new integers and scales into the program, and what runs after it computes with them. Every
    layer thus sees the layers before it as they were optimised, as a Capture rebuilt and re-run up to each
    layer would show it, in one pass instead of one per layer. The samples run in batches of `batch` side
    by side (a program with a fixed batch takes one); stream_samples says how many fit."""

    def __init__(self, capture: Capture, names: list[str], feeds: Feeds, batch: int):
        self.capture, device = capture, capture.device
        values = self.capture.builder.values
        self.readers: dict[str, int] = {}
        self.wanted: dict[fx.Node, str] = {}
        for name in names:
            if not isinstance(values.get(name), fx.Node):
                raise ValueError(f"tensor {name} is not computed by the program")
            self.wanted[values[name]] = name
            self.readers[name] = self.readers.get(name, 0) + 1
        self.interpreter = fx.Interpreter(self.capture.module)  # its user_to_last_uses says what to free
        count = len(next(iter(feeds.values())))
        self.batches = [[torch.from_numpy(np.ascontiguousarray(feeds[n][start:start + batch])).to(device)
                         for n in self.capture.inputs] for start in range(0, count, batch)]
        self.envs: list[dict] = [{} for _ in self.batches]
        self.order = list(self.capture.module.graph.nodes)
        self.placeholders = {node: index for index, node in enumerate(n for n in self.order if n.op == "placeholder")}
        self.position = 0  # nodes run so far, in graph order
        self.found: dict[str, Tensor] = {}

    def _run(self, node: fx.Node) -> None:
        for env, batch in zip(self.envs, self.batches):
            self.interpreter.env, self.interpreter.args_iter = env, iter(batch[self.placeholders.get(node, 0):])
            env[node] = self.interpreter.run_node(node)

    def of(self, name: str) -> Tensor:
        """The tensor on every sample, the program run up to it; asked for once per time it was named."""
        with torch.no_grad():
            while name not in self.found:
                node = self.order[self.position]
                self.position += 1
                self._run(node)
                if node in self.wanted:
                    # contiguous, as Capture gives it: a channels-last input picks other conv kernels downstream
                    found = torch.cat([env[node].detach().float() for env in self.envs])
                    self.found[self.wanted[node]] = found.contiguous()
                for dead in self.interpreter.user_to_last_uses.get(node, []):
                    if dead.op != "get_attr":  # buffers stay at hand for update's recomputation
                        for env in self.envs:
                            env.pop(dead, None)
        self.readers[name] -= 1
        return self.found[name] if self.readers[name] else self.found.pop(name)

    def update(self, layer: QuantizedLayer) -> None:
        """The layer's weight, scale and bias initializers as the IR now holds them, into the program's
        buffers, and what was computed from them already (the weight's dequantization) computed again."""
        builder, module = self.capture.builder, self.capture.module
        changed: set[fx.Node] = set()
        for value in _layer_values(layer):
            node = builder._buffers.get(value.name)
            if node is not None:
                module.get_buffer(node.target).copy_(torch.from_numpy(np.array(value.const_value.numpy())))
                changed.add(node)
        revived = []
        with torch.no_grad():
            for node in self.order[:self.position]:
                if node.op == "get_attr" or not any(arg in changed for arg in node.all_input_nodes):
                    continue
                if any(arg not in self.envs[0] for arg in node.all_input_nodes):
                    raise ValueError(f"{layer.name}: {node.name} reads its weight and a value no longer held")
                if node not in self.envs[0]:
                    revived.append(node)  # freed already; its readers may still be held
                self._run(node)
                changed.add(node)
        for node in revived:
            for env in self.envs:
                env.pop(node, None)


class LayerStreams:
    """What AdaRound and bias correction read per layer, each from one pass (LayerInputs) over the
    calibration samples: the layer's input in the QDQ IR as optimised so far (`update(layer)` after the layer
    changed) and, with `float_target`, its input in the float IR. As many samples as both passes hold."""

    def __init__(self, model: ir.Model, float_model: ir.Model, layers: list[QuantizedLayer], feeds: Feeds,
                 batch: int, device: torch.device, float_target: bool):
        quantized = Capture(model, device)
        names = [layer.input for layer in layers]
        floats = [layer.float_input for layer in layers if layer.float_input is not None] if float_target else []
        reference = Capture(float_model, device) if floats else None
        count = stream_samples(quantized, names, feeds)
        if reference is not None:
            count = min(count, stream_samples(reference, floats, feeds))
        feeds = limit_samples(feeds, count)
        self.quantized = LayerInputs(quantized, names, feeds, batch)
        self.float = LayerInputs(reference, floats, feeds, batch) if reference is not None else None

    def of(self, layer: QuantizedLayer) -> tuple[Tensor, Tensor | None]:
        """The layer's input in the QDQ IR, and in the float IR where that is the target (else None)."""
        x_ref = self.float.of(layer.float_input) if self.float is not None and layer.float_input is not None else None
        return self.quantized.of(layer.input), x_ref

    def update(self, layer: QuantizedLayer) -> None:
        self.quantized.update(layer)


def streamed(float_model: ir.Model, feeds: Feeds, batch: int, device: torch.device, float_target: bool,
             step: Callable[[QuantizedLayer, Tensor, Tensor | None, int], dict]):
    """The optimiser optimise_layers takes, for a `step(layer, x~, x_ref or None, opset)` that changes one
    layer in place on its LayerStreams inputs; the streams then take in the change."""
    def optimiser(model: ir.Model, layers: list[QuantizedLayer]) -> Callable[[QuantizedLayer], dict]:
        streams = LayerStreams(model, float_model, layers, feeds, batch, device, float_target)
        opset = model.opset_imports.get("", 13)

        def optimise(layer: QuantizedLayer) -> dict:
            record = step(layer, *streams.of(layer), opset)
            streams.update(layer)
            return record
        return optimise
    return optimiser


def _layer_values(layer: QuantizedLayer) -> list[ir.Value]:
    """The initializers that make the layer's weight and bias: integers, scales, zero points."""
    values = []
    for integers in (layer.codes, layer.bias):
        if integers is None:
            continue
        values.append(integers)
        dequantize = dequantize_of(integers)
        if dequantize is not None:
            values += [v for v in dequantize.inputs[1:] if v is not None and v.const_value is not None]
    return values


def stream_samples(capture: Capture, names: list[str], feeds: Feeds) -> int:
    """The samples LayerInputs over these tensors may take at once: about LIVE_TENSORS of the widest of them
    per sample (a layer's input and the values around it) within STREAM_BYTES. Sizes from one sample."""
    if not names:
        return len(next(iter(feeds.values())))
    probe = LayerInputs(capture, names, limit_samples(feeds, 1), 1)
    widest = max(probe.of(name).numel() * 4 for name in names)
    return max(1, STREAM_BYTES // (LIVE_TENSORS * widest))


def limit_samples(feeds: Feeds, count: int) -> Feeds:
    return {name: array[:count] for name, array in feeds.items()}


def samples_within(budget_bytes: int, *per_sample: Tensor) -> int:
    """How many samples the tensors' per-sample sizes allow within the budget (at least one batch's worth)."""
    size = sum(t[0].numel() * t.element_size() for t in per_sample)
    return max(1, min(len(per_sample[0]), budget_bytes // max(size, 1)))


def channel_means(y: Tensor, axis: int) -> Tensor:
    """The mean of each output channel over every other axis."""
    axis = axis % y.dim()
    return y.transpose(0, axis).reshape(y.shape[axis], -1).mean(dim=1) if y.dim() > 1 else y


def batched(count: int, batch: int) -> Iterator[slice]:
    for start in range(0, count, batch):
        yield slice(start, min(start + batch, count))


@contextmanager
def seeded(seed: int, threads: int | None) -> Iterator[None]:
    """Seeded torch with deterministic kernels and the thread count asked for, restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.get_num_threads())
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


def device_of(name: str) -> torch.device:
    from qconvert.errors import UsageError

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: torch sees no CUDA device here; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"--device {name}: use cpu or cuda")
    return torch.device(name)


def optimise_layers(qdq: ir.Model, float_model: ir.Model, method: str, options, seed: int,
                    optimiser: Callable[[ir.Model, list[QuantizedLayer]], Callable[[QuantizedLayer], dict]],
                    why_not: Callable[[QuantizedLayer], str | None] = lambda layer: None) -> tuple[ir.Model, dict]:
    """A copy of the QDQ IR with each of its quantized layers optimised in graph order, seeded with `seed` on
    `options.threads` threads: `optimiser(copy, layers)` is given the copy and the layers to optimise, and
    returns the function that changes one of them in place and returns its record. The facts: the method,
    its options, per layer the record and its seconds or why it was skipped (quantized_layers' reason or
    `why_not`'s), and the seconds in all."""
    result = copy_model(qdq)
    facts = {"method": method, "options": asdict(options), "layers": []}
    began = time.perf_counter()
    with seeded(seed, options.threads):
        found = quantized_layers(result, float_model)
        reasons = [layer.reason if isinstance(layer, Skipped) else why_not(layer) for layer in found]
        optimise = optimiser(result, [layer for layer, reason in zip(found, reasons) if not reason])
        for layer, reason in zip(found, reasons):
            if reason:
                op = layer.op if isinstance(layer, Skipped) else layer.node.op_type
                facts["layers"].append({"layer": layer.name, "op": op, "skipped": reason})
                continue
            start = time.perf_counter()
            record = optimise(layer)
            record["seconds"] = round(time.perf_counter() - start, 3)
            facts["layers"].append(record)
    facts["seconds"] = round(time.perf_counter() - began, 3)
    return result, facts

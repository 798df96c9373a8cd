"""What each calibration method would clip a few activations to, with the activations' histograms: the
figure that shows why minmax wastes levels on outliers and where percentile, entropy and mse cut.

One onnxruntime session over the calibration data returns the input activations of the named layers;
every method's observer sees them (qconvert.quant.observers, two passes as in calibration), so the
ranges drawn are the ones calibration would choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from qconvert.quant.calibrate import _session, batch_size_of, batches
from qconvert.quant.config import QuantConfig
from qconvert.quant.observers import BINS, Percentile, make_observer
from qconvert.quant.plan import find_layers, layer_name

METHODS = ("minmax", "moving-average", "percentile", "entropy", "mse")
MOST_SENSITIVE = 3  # layers whose histograms a report shows: enough to see the pattern, a few KB each
DISPLAY_BINS = 128  # the observers' 2048 bins merged: enough to see the shape, a few KB in the report
assert BINS % DISPLAY_BINS == 0


@dataclass
class ActivationHistogram:
    layer: str
    tensor: str  # the layer's activation input, the tensor its input QDQ pair quantizes
    edges: list[float]  # DISPLAY_BINS + 1, from the smallest to the largest value seen
    counts: list[int]
    ranges: dict[str, list[float]] = field(default_factory=dict)  # method (as --calibrate spells it) -> [lo, hi]
    chosen: str = ""  # the method the quantization used
    symmetric: list[float] | None = None  # the chosen range made symmetric about zero (--activations symmetric)


def activation_histograms(model: ir.Model, feeds: dict[str, np.ndarray], layers: list[str],
                          config: QuantConfig) -> list[ActivationHistogram]:
    """For each named layer (in the order given) whose first activation input is a tensor of the IR."""
    inputs_of = {layer_name(layer.node): layer.inputs[0].name for layer in find_layers(model.graph) if layer.inputs}
    wanted = [(name, inputs_of[name]) for name in layers if name in inputs_of]
    if not wanted:
        return []
    graph_inputs = [v.name for v in model.graph.inputs]
    tensors = list(dict.fromkeys(tensor for _, tensor in wanted))
    from_session = [t for t in tensors if t not in graph_inputs]
    session = _session(model, from_session) if from_session else None

    def label(method: str) -> str:
        return f"percentile:{config.percentile:g}" if method == "percentile" else method

    observers = {t: {label(m): make_observer(m, config.percentile, config.activation_dtype,
                                             config.symmetric_activations) for m in METHODS} for t in tensors}
    shape = {t: Percentile(100.0) for t in tensors}  # keeps every value's bin, zeros included, for the figure

    def run_all(update) -> None:
        for batch in batches(feeds, batch_size_of(model)):
            values = session.run(from_session, {n: batch[n] for n in graph_inputs}) if session else []
            found = dict(zip(from_session, values))
            for tensor in tensors:
                update(tensor, np.asarray(batch[tensor] if tensor in graph_inputs else found[tensor], np.float32))

    def first(tensor, value):
        shape[tensor].observe(value)
        for observer in observers[tensor].values():
            observer.observe(value)

    def second(tensor, value):
        shape[tensor].observe_histogram(value)
        for observer in observers[tensor].values():
            if observer.needs_histogram:
                observer.observe_histogram(value)

    run_all(first)
    run_all(second)
    chosen = label(config.method)
    result = []
    for name, tensor in wanted:
        histogram = shape[tensor]
        counts = histogram.counts.reshape(DISPLAY_BINS, -1).sum(axis=1)
        edges = histogram.edges()[:: BINS // DISPLAY_BINS]
        ranges = {method: [float(v) for v in observer.range()] for method, observer in observers[tensor].items()}
        lo, hi = ranges[chosen]
        absmax = max(-min(lo, 0.0), max(hi, 0.0))
        result.append(ActivationHistogram(name, tensor, [float(e) for e in edges], [int(c) for c in counts], ranges,
                                          chosen, [-absmax, absmax]))
    return result


def most_sensitive_histograms(model: ir.Model, feeds: dict[str, np.ndarray], sensitivity,
                              config: QuantConfig) -> list[ActivationHistogram]:
    """`sensitivity`: qconvert.quant.sensitivity.Sensitivity, its layers most sensitive first."""
    return activation_histograms(model, feeds, [layer.layer for layer in sensitivity.layers[:MOST_SENSITIVE]], config)

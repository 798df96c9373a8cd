"""Calibration: run the float IR on calibration data in onnxruntime and give each planned tensor a range."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir

from qconvert.quant.config import QuantConfig
from qconvert.quant.observers import make_observer
from qconvert.quant.plan import plan_quantization

Ranges = dict[str, tuple[float, float]]


def batch_size_of(model: ir.Model, wanted: int = 32) -> int:
    """The IR's batch if it is fixed (e.g. 1), else `wanted`."""
    sizes = [v.shape[0] for v in model.graph.inputs if v.shape is not None and len(v.shape)]
    fixed = [s for s in sizes if isinstance(s, int)]
    return min(fixed) if fixed else wanted


def batches(feeds: dict[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    count = len(next(iter(feeds.values())))
    for start in range(0, count, size):
        yield {name: array[start:start + size] for name, array in feeds.items()}


def _session(model: ir.Model, outputs: list[str]):
    """An onnxruntime session on the float IR that also returns the named intermediate tensors."""
    import onnxruntime as ort

    proto = ir.serde.serialize_model(model)
    present = {o.name for o in proto.graph.output}
    proto.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in outputs if name not in present
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Basic optimisations only: fusions (Conv+Relu...) must not hide the tensors asked for.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def calibrate(model: ir.Model, feeds: dict[str, np.ndarray], config: QuantConfig,
              names: list[str] | None = None) -> Ranges:
    """Ranges for `names` (default: every tensor the full quantization plan puts QDQ on)."""
    if names is None:
        names = [t.name for t in plan_quantization(model.graph).tensors]
    if not names:
        return {}
    inputs = [v.name for v in model.graph.inputs]
    session = _session(model, [n for n in names if n not in inputs])
    # Graph inputs are observed straight from the feeds; everything else comes out of the session.
    from_session = [o.name for o in session.get_outputs() if o.name in set(names)]
    wanted = [n for n in names if n in inputs] + from_session
    observers = {name: make_observer(config.method, config.percentile, config.activation_dtype,
                                     config.symmetric_activations) for name in wanted}
    size = batch_size_of(model)

    def run_all(update) -> None:
        for batch in batches(feeds, size):
            values = session.run(from_session, {n: batch[n] for n in inputs}) if from_session else []
            for name, value in zip(wanted, [batch[n] for n in wanted if n in inputs] + values):
                update(observers[name], np.asarray(value, dtype=np.float32))

    run_all(lambda observer, value: observer.observe(value))
    if any(o.needs_histogram for o in observers.values()):  # second pass: histograms over the extremes
        run_all(lambda observer, value: observer.observe_histogram(value))
    return {name: tuple(float(x) for x in observer.range()) for name, observer in observers.items()}

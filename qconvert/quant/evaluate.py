"""Run an IR (float or QDQ) in onnxruntime in this process: for sensitivity analysis and mixed precision,
where dozens of variants are compared on the same data and child processes would cost more than the runs."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.quant.calibrate import batch_size_of, batches
from qconvert.report.accuracy import evaluate, infer_metric
from qconvert.report.metrics import sqnr_db


def run_first_output(model: ir.Model, feeds: dict[str, np.ndarray], threads: int | None = None) -> np.ndarray:
    return run_outputs(model, feeds, threads, first_only=True)[0]


def run_outputs(model: ir.Model, feeds: dict[str, np.ndarray], threads: int | None = None,
                first_only: bool = False) -> list[np.ndarray]:
    """Every output of the IR (or the first) on `feeds`, in batches of the IR's own batch where fixed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Full optimisation on the onnx-qdq artifact's own form: QDQ runs as the int8 kernels it gets there
    # (the IR as written would meet x86's saturating pair sums that the lowering avoids).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if any(node.op_type == "QuantizeLinear" for node in model.graph):
        from qconvert.backends.onnx.qdq_lowering import lower_for_onnxruntime

        model = lower_for_onnxruntime(model)
    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    wanted = [session.get_outputs()[0].name] if first_only else None
    parts = [session.run(wanted, {n: batch[n] for n in names}) for batch in batches(feeds, batch_size_of(model))]
    return [np.concatenate(outputs) for outputs in zip(*parts)]


class Scorer:
    """Scores variants of one float model against it: output SQNR and, with labels, the task metric."""

    def __init__(self, model: ir.Model, feeds: dict[str, np.ndarray], labels: np.ndarray | None = None,
                 metric: str | None = None, threads: int | None = None):
        self.feeds, self.labels, self.threads = feeds, labels, threads
        self.reference = run_first_output(model, feeds, threads)
        self.metric = metric or (infer_metric(self.reference, labels) if labels is not None else None)
        self.float_metric = self.metric_of(self.reference)

    def metric_of(self, output: np.ndarray) -> float | None:
        if self.labels is None or not self.metric:
            return None
        return next(iter(evaluate(self.metric, output, self.labels, self.reference).values()))

    def score(self, model: ir.Model) -> tuple[float, float | None]:
        """(SQNR dB against the float model, metric drop from the float model's metric)."""
        output = run_first_output(model, self.feeds, self.threads)
        value = self.metric_of(output)
        drop = None if value is None else self.float_metric - value
        return sqnr_db(self.reference, output), drop

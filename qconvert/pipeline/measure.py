"""Measuring the source, the reference every artifact's row is compared with, and that comparison."""

from __future__ import annotations

import numpy as np

from qconvert.backends.measure import Measurement, measure_in_child
from qconvert.pipeline.state import ConversionState
from qconvert.report.accuracy import evaluate, infer_metric
from qconvert.report.metrics import looks_like_class_scores, max_abs_error, sqnr_db, top1_agreement
from qconvert.report.result import Row, Status
from qconvert.report.sizes import zipped_bytes


def measure_source(state: ConversionState) -> None:
    """The source row; with an evaluation set, the metric every row is scored with."""
    state.notify("measure", "source")
    source, data, result = state.source, state.data, state.result
    reference = measure_in_child(source.reference_runner, source.path, source.load_options, data.feeds,
                                 data.timing_feeds, state.settings, data.eval_feeds, data.eval_batch)
    row = Row("source", source.framework, reference.status, path=state.model, error=reference.error,
              size_mb=source.size_bytes / 1e6, zip_mb=zipped_bytes(source.file or source.path) / 1e6)
    fill_timing(row, reference, None)
    result.rows.append(row)
    if data.eval_feeds and reference.status == "ok":
        result.metric = state.options.evaluation.metric or infer_metric(reference.eval_outputs[0], data.labels)
        row.metrics = evaluate(result.metric, reference.eval_outputs[0], data.labels, reference.eval_outputs[0])
    state.reference = reference


def compare(reference: list[np.ndarray], actual: list[np.ndarray], row: Row) -> None:
    """Worst-output SQNR and max error; top-1 agreement on the first output if it holds class scores."""
    if len(reference) != len(actual):
        row.status, row.error = Status.FAILED, f"{len(actual)} outputs, the source has {len(reference)}"
        return
    if any(np.asarray(r).shape != np.asarray(a).shape for r, a in zip(reference, actual)):
        row.status = Status.FAILED
        row.error = f"output shapes {[a.shape for a in actual]} differ from {[r.shape for r in reference]}"
        return
    row.sqnr_db = min(sqnr_db(r, a) for r, a in zip(reference, actual))
    row.max_abs_error = max(max_abs_error(r, a) for r, a in zip(reference, actual))
    if looks_like_class_scores(reference[0]):
        row.top1_agreement = top1_agreement(reference[0], actual[0])


def fill_timing(row: Row, measurement: Measurement, reference_ms: float | None) -> None:
    row.device = measurement.device
    row.latency_ms, row.latency_p90_ms = measurement.median_ms, measurement.p90_ms
    row.latencies_ms = list(measurement.latencies_ms)
    row.peak_rss_mb = measurement.peak_rss_mb
    if row.latency_ms is not None and reference_ms:
        row.relative_time = row.latency_ms / reference_ms

"""Emit and measure: every target written from the IR variant it consumes, then run in its runtime and
compared with the source. One target failing does not stop the others."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from qconvert.backends.measure import measure_in_child
from qconvert.backends.ports import io_contract
from qconvert.backends.targets import EmitOptions, IRVariant, Target
from qconvert.converters.user_code import is_factory_spec, split_factory
from qconvert.fileio import atomic_path
from qconvert.pipeline.measure import compare, fill_timing
from qconvert.pipeline.report import write_json
from qconvert.pipeline.state import ConversionState
from qconvert.report.accuracy import evaluate
from qconvert.report.metrics import sqnr_db
from qconvert.report.result import Row, Status
from qconvert.report.sizes import zipped_bytes


def model_stem(path: str) -> str:
    return split_factory(path)[0].stem if is_factory_spec(path) else Path(path).stem


def artifact_name(stem: str, target: Target) -> str:
    """unet + onnx-fp16 -> unet.fp16.onnx"""
    return f"{stem}.{target.name.split('-', 1)[1]}{target.suffix}"


def emit_targets(state: ConversionState) -> None:
    emit_options = replace(state.options.emit, quant=state.options.quant)
    for target in state.targets:
        if not target.available:
            state.result.rows.append(Row(target.name, target.runtime, Status.SKIPPED, error=(
                f"{target.runtime} is not installed ({', '.join(target.missing_modules())})")))
        elif target.name in state.uncalibrated:
            state.result.rows.append(Row(target.name, target.runtime, Status.SKIPPED,
                                         error="static int8 needs calibration data (--calib)"))
        elif target.consumes in state.failed_variants:
            state.result.rows.append(Row(target.name, target.runtime, Status.FAILED,
                                         error=state.failed_variants[target.consumes]))
        else:
            row, outputs, facts = _emit_and_measure(target, state, emit_options)
            state.result.rows.append(row)
            if outputs is not None and target.consumes is IRVariant.QDQ:
                state.int8_outputs[target.name] = outputs
                outputs_io = (facts.get("io") or {}).get("outputs", [])
                state.io_scales = state.io_scales or [p.get("scale") for p in outputs_io]


def _emit_and_measure(target: Target, state: ConversionState,
                      emit_options: EmitOptions) -> tuple[Row, list[np.ndarray] | None, dict]:
    """One artifact's row, its parity outputs (None when it failed), and the emitter's facts."""
    row = Row(target.name, target.runtime, Status.OK)
    state.notify("emit", target.name)
    path = state.out / artifact_name(model_stem(state.model), target)
    began = time.perf_counter()
    try:
        emitted = state.variants[target.consumes]
        with atomic_path(path) as tmp:
            facts = target.emit(emitted, tmp, emit_options) or {}
            # The artifact's I/O contract (order, names, layouts, integer scales), beside it, with it.
            _write_io_contract(path, io_contract(emitted, facts))
    except Exception as error:  # one target failing must not stop the others
        row.status, row.error = Status.FAILED, f"{type(error).__name__}: {error}".splitlines()[0]
        return row, None, {}
    row.convert_s = time.perf_counter() - began
    row.path, row.size_mb, row.zip_mb = str(path), path.stat().st_size / 1e6, zipped_bytes(path) / 1e6
    state.notify("measure", target.name)
    row.quantization = facts.get("quantization")
    data, reference = state.data, state.reference
    measurement = measure_in_child(target.opener, str(path), facts, data.feeds, data.timing_feeds, state.settings,
                                   data.eval_feeds, data.eval_batch)
    row.status, row.error = measurement.status, measurement.error
    if measurement.status != "ok":
        return row, None, facts
    fill_timing(row, measurement, state.result.row("source").latency_ms)
    if reference.status != "ok":
        return row, None, facts
    compare(reference.outputs, measurement.outputs, row)
    if state.result.metric:
        row.metrics = evaluate(state.result.metric, measurement.eval_outputs[0], data.labels,
                               reference.eval_outputs[0])
    trained = state.trained_outputs.get(target.consumes)
    if trained is not None:
        # QAT made its IR a function of its own: the floor proves the artifact computes that IR.
        row.ir_sqnr_db = min(sqnr_db(r, a) for r, a in zip(trained, measurement.outputs))
    parity, against = (row.ir_sqnr_db, " against the trained IR") if trained is not None else (row.sqnr_db, "")
    if row.status is Status.OK and parity < target.parity_floor_db:
        row.status = Status.PARITY_FAILED
        row.error = f"SQNR {parity:.1f} dB{against} below the {target.parity_floor_db:.0f} dB floor"
    return row, measurement.outputs, facts


def _write_io_contract(artifact: Path, io: dict) -> None:
    """`<artifact>.io.json`: the inputs and outputs in order, with the names, layouts, dtypes and (integer
    I/O) the scales and zero points a device-side caller reads, quantizes and dequantizes with."""
    write_json(artifact.with_name(artifact.name + ".io.json"), io)

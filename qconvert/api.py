"""The Python API: `convert(path, to=[...])` does what `qconvert MODEL --to ...` does."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from qconvert.backends.hardware import physical_cores
from qconvert.backends.measure import Measurement, RunSettings, measure_in_child
from qconvert.backends.targets import EmitOptions, Target, resolve_targets
from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.user_code import is_factory_spec, split_factory
from qconvert.errors import UsageError
from qconvert.fileio import atomic_path
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.report.metrics import looks_like_class_scores, max_abs_error, sqnr_db, top1_agreement
from qconvert.report.result import ConversionResult, Row

Progress = Callable[[str, str], None]  # (stage, target name)


def model_stem(path: str) -> str:
    return split_factory(path)[0].stem if is_factory_spec(path) else Path(path).stem


def artifact_name(stem: str, target: Target) -> str:
    """unet + onnx-fp16 -> unet.fp16.onnx"""
    return f"{stem}.{target.name.split('-', 1)[1]}{target.suffix}"


def check_writable(out_dir: Path) -> None:
    """Fail before any work if the output folder cannot be made or written."""
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write to output folder {out_dir}: {existing} is a file; choose another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to output folder {out_dir}: {existing} is not writable; choose another -o")


def compare(reference: list[np.ndarray], actual: list[np.ndarray], row: Row) -> None:
    """Worst-output SQNR and max error; top-1 agreement on the first output if it holds class scores."""
    if len(reference) != len(actual):
        row.status, row.error = "failed", f"{len(actual)} outputs, the source has {len(reference)}"
        return
    if any(np.asarray(r).shape != np.asarray(a).shape for r, a in zip(reference, actual)):
        row.status = "failed"
        row.error = f"output shapes {[a.shape for a in actual]} differ from {[r.shape for r in reference]}"
        return
    row.sqnr_db = min(sqnr_db(r, a) for r, a in zip(reference, actual))
    row.max_abs_error = max(max_abs_error(r, a) for r, a in zip(reference, actual))
    if looks_like_class_scores(reference[0]):
        row.top1_agreement = top1_agreement(reference[0], actual[0])


def _fill_timing(row: Row, measurement: Measurement, reference_ms: float | None) -> None:
    row.device = measurement.device
    row.latency_ms, row.latency_p90_ms = measurement.median_ms, measurement.p90_ms
    row.peak_rss_mb = measurement.peak_rss_mb
    if row.latency_ms is not None and reference_ms:
        row.relative_time = row.latency_ms / reference_ms


def convert(
    model: str,
    to: list[str] | str,
    *,
    out_dir: str | Path = "qconvert-out",
    input_shapes: list[str] | tuple[str, ...] = (),
    weights: str | None = None,
    trust_code: bool = False,
    device: str = "cpu",
    io_layout: str | None = None,
    threads: int | None = None,
    batch: int = 1,
    parity_samples: int = 16,
    runs: int = 20,
    warmup: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
) -> ConversionResult:
    from qconvert.passes import cleanup

    model = str(model)
    targets = resolve_targets(to.split(",") if isinstance(to, str) else list(to))
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; use cpu or cuda")
    out = Path(out_dir)
    check_writable(out)
    notify = progress or (lambda stage, name: None)
    settings = RunSettings(device=device, threads=threads or physical_cores(), warmup=warmup, runs=runs)

    notify("load", "source")
    began = time.perf_counter()
    source = load_source(model, input_specs=parse_input_shapes(list(input_shapes)), weights=weights,
                         trust_code=trust_code)
    graph = cleanup(source.ir)
    load_s = time.perf_counter() - began
    specs = specs_from_ir(graph)
    feeds = random_feeds(specs, parity_samples, seed)
    timing_feeds = random_feeds(specs, batch, seed + 1)
    out.mkdir(parents=True, exist_ok=True)
    result = ConversionResult(model, source.framework, source.format, str(out), device, settings.threads,
                              batch, next(iter(feeds.values())).shape[0], load_s)

    notify("measure", "source")
    reference = measure_in_child(source.reference_runner, source.path, source.load_options, feeds,
                                 timing_feeds, settings)
    source_row = Row("source", source.framework, reference.status, path=model, error=reference.error,
                     size_mb=source.size_bytes / 1e6)
    _fill_timing(source_row, reference, None)
    result.rows.append(source_row)

    stem = model_stem(model)
    emit_options = EmitOptions(io_layout=io_layout)
    for target in targets:
        row = Row(target.name, target.runtime, "ok")
        result.rows.append(row)
        if not target.available:
            row.status = "skipped"
            row.error = f"{target.runtime} is not installed ({', '.join(target.missing_modules())})"
            continue
        notify("emit", target.name)
        path = out / artifact_name(stem, target)
        began = time.perf_counter()
        try:
            with atomic_path(path) as tmp:
                facts = target.emit(graph, tmp, emit_options) or {}
        except Exception as error:  # one target failing must not stop the others
            row.status, row.error = "failed", f"{type(error).__name__}: {error}".splitlines()[0]
            continue
        row.convert_s = time.perf_counter() - began
        row.path, row.size_mb = str(path), path.stat().st_size / 1e6
        notify("measure", target.name)
        measurement = measure_in_child(target.opener, str(path), facts, feeds, timing_feeds, settings)
        row.status, row.error = measurement.status, measurement.error
        if measurement.status != "ok":
            continue
        _fill_timing(row, measurement, source_row.latency_ms)
        if reference.status == "ok":
            compare(reference.outputs, measurement.outputs, row)
            if row.status == "ok" and row.sqnr_db < target.parity_floor_db:
                row.status = "parity-failed"
                row.error = f"SQNR {row.sqnr_db:.1f} dB below the {target.parity_floor_db:.0f} dB floor"

    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result

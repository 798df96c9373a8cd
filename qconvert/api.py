"""The Python API: `convert(path, to=[...])` does what `qconvert MODEL --to ...` does."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx_ir as ir

from qconvert.backends.hardware import physical_cores
from qconvert.backends.measure import Measurement, RunSettings, measure_in_child
from qconvert.backends.ports import io_contract
from qconvert.backends.targets import EmitOptions, IRVariant, Quantization, Target, resolve_targets
from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes
from qconvert.converters.user_code import is_factory_spec, split_factory
from qconvert.errors import UsageError
from qconvert.fileio import atomic_path
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.quant.calibrate import batch_size_of
from qconvert.quant.config import QuantConfig
from qconvert.quant.data import ImageOptions, check_data_path, load_calibration, load_eval
from qconvert.report.accuracy import evaluate, infer_metric
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
    calib: str | None = None,
    calib_samples: int | None = 256,
    calib_image: ImageOptions = ImageOptions(),
    quant: QuantConfig = QuantConfig(),
    eval_path: str | None = None,
    metric: str | None = None,
    max_drop: float | None = None,
    engine: str | None = None,
) -> ConversionResult:
    """`calib`: calibration data for static int8 targets (qconvert.quant.data); `eval_path`: an .npz of
    inputs and labels that adds a task metric per row; `max_drop`: keep the most sensitive layers float
    until the static int8 metric is within this of the float model's (needs `eval_path`); `engine`: the
    PyTorch int8 engine (x86, qnnpack for ARM...) torch-int8/torch-dynamic weights are packed for."""
    from qconvert.passes import cleanup

    model = str(model)
    names = to.split(",") if isinstance(to, str) else list(to)
    targets = resolve_targets(names)
    # `all` without --calib: static int8 targets become skipped rows, not an error (a named one is).
    uncalibrated = {t.name for t in targets if t.consumes is IRVariant.QDQ and calib is None and t.name not in names}
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; use cpu or cuda")
    out = Path(out_dir)
    check_writable(out)
    _check_engine(engine, targets)
    _check_quantization_options([t for t in targets if t.name not in uncalibrated], calib, eval_path, max_drop,
                                trust_code)
    notify = progress or (lambda stage, name: None)
    settings = RunSettings(device=device, threads=threads or physical_cores(), warmup=warmup, runs=runs)

    notify("load", "source")
    began = time.perf_counter()
    source = load_source(model, input_specs=parse_input_shapes(list(input_shapes)), weights=weights,
                         trust_code=trust_code)
    graph = cleanup(source.ir)
    load_s = time.perf_counter() - began
    data = _load_data(graph, calib, calib_samples, calib_image, eval_path, parity_samples, batch, trust_code, seed)
    out.mkdir(parents=True, exist_ok=True)
    result = ConversionResult(model, source.framework, source.format, str(out), device, settings.threads,
                              batch, next(iter(data.feeds.values())).shape[0], load_s, parity_data=data.parity_data)

    notify("measure", "source")
    reference = measure_in_child(source.reference_runner, source.path, source.load_options, data.feeds,
                                 data.timing_feeds, settings, data.eval_feeds, data.eval_batch)
    source_row = Row("source", source.framework, reference.status, path=model, error=reference.error,
                     size_mb=source.size_bytes / 1e6)
    _fill_timing(source_row, reference, None)
    result.rows.append(source_row)
    if data.eval_feeds and reference.status == "ok":
        result.metric = metric or infer_metric(reference.eval_outputs[0], data.labels)
        source_row.metrics = evaluate(result.metric, reference.eval_outputs[0], data.labels,
                                      reference.eval_outputs[0])

    qdq_graph, quant_error = None, None
    if any(t.consumes is IRVariant.QDQ and t.name not in uncalibrated for t in targets):
        notify("calibrate", "static int8")
        try:
            qdq_graph, result.float_layers = _quantize(graph, data.calib_feeds, quant, data.eval_feeds, data.labels,
                                                       result.metric or metric, max_drop)
        except Exception as error:  # the static int8 rows fail; the other targets still run
            quant_error = f"quantization failed: {type(error).__name__}: {error}".splitlines()[0]

    job = _Job(out, model_stem(model), graph, qdq_graph, EmitOptions(io_layout=io_layout, quant=quant,
               torch_engine=engine), settings, data, reference, source_row.latency_ms, result.metric, notify)
    int8_outputs: dict[str, list[np.ndarray]] = {}  # static int8 artifacts' parity outputs
    io_scales: list[float | None] = []  # an integer artifact's output scales, where the IR's output is float
    for target in targets:
        if not target.available:
            result.rows.append(Row(target.name, target.runtime, "skipped", error=(
                f"{target.runtime} is not installed ({', '.join(target.missing_modules())})")))
        elif target.name in uncalibrated:
            result.rows.append(Row(target.name, target.runtime, "skipped",
                                   error="static int8 needs calibration data (--calib)"))
        elif target.consumes is IRVariant.QDQ and quant_error:
            result.rows.append(Row(target.name, target.runtime, "failed", error=quant_error))
        else:
            row, outputs, facts = _convert_target(target, job)
            result.rows.append(row)
            if outputs is not None and target.consumes is IRVariant.QDQ:
                int8_outputs[target.name] = outputs
                io_scales = io_scales or [p.get("scale") for p in (facts.get("io") or {}).get("outputs", [])]

    if len(int8_outputs) >= 2:  # the int8 artifacts against each other (same QDQ IR)
        from qconvert.report.int8_parity import output_scales, parity_matrix

        result.int8_parity = parity_matrix(int8_outputs, output_scales(qdq_graph, io_scales))
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result


@dataclass
class _Data:
    """What every runtime is fed: parity samples, a timing batch, and the calibration and evaluation sets."""

    feeds: dict[str, np.ndarray]
    parity_data: str  # eval | calib | random
    timing_feeds: dict[str, np.ndarray]
    calib_feeds: dict[str, np.ndarray] | None
    eval_feeds: dict[str, np.ndarray] | None
    labels: np.ndarray | None
    eval_batch: int


def _load_data(graph: ir.Model, calib: str | None, calib_samples: int | None, calib_image: ImageOptions,
               eval_path: str | None, parity_samples: int, batch: int, trust_code: bool, seed: int) -> _Data:
    specs = specs_from_ir(graph)
    # Bad data fails here, before calibration or any artifact.
    calib_feeds = load_calibration(calib, specs, samples=calib_samples, trust_code=trust_code,
                                   image=calib_image, seed=seed) if calib else None
    eval_feeds, labels = load_eval(eval_path, specs) if eval_path else (None, None)
    # Parity on real data where there is some: int8 ranges fit real inputs, not random ones.
    feeds, parity_data = random_feeds(specs, parity_samples, seed), "random"
    for name, real in (("eval", eval_feeds), ("calib", calib_feeds if calib != "random" else None)):
        if real:
            feeds, parity_data = {k: v[:parity_samples] for k, v in real.items()}, name
            break
    return _Data(feeds, parity_data, random_feeds(specs, batch, seed + 1), calib_feeds, eval_feeds, labels,
                 batch_size_of(graph))


@dataclass
class _Job:
    """What every target's emit-and-measure step shares."""

    out: Path
    stem: str
    graph: ir.Model  # the cleaned float IR
    qdq_graph: ir.Model | None  # the static int8 IR
    emit_options: EmitOptions
    settings: RunSettings
    data: _Data
    reference: Measurement
    source_ms: float | None
    metric: str | None
    notify: Progress


def _convert_target(target: Target, job: _Job) -> tuple[Row, list[np.ndarray] | None, dict]:
    """Emit one artifact and measure it in its runtime: its row, its parity outputs (None when it failed),
    and the emitter's facts."""
    row = Row(target.name, target.runtime, "ok")
    job.notify("emit", target.name)
    path = job.out / artifact_name(job.stem, target)
    began = time.perf_counter()
    try:
        emitted = job.qdq_graph if target.consumes is IRVariant.QDQ else job.graph
        with atomic_path(path) as tmp:
            facts = target.emit(emitted, tmp, job.emit_options) or {}
            # The artifact's I/O contract (order, names, layouts, integer scales), beside it, with it.
            _write_io_contract(path, io_contract(emitted, facts))
    except Exception as error:  # one target failing must not stop the others
        row.status, row.error = "failed", f"{type(error).__name__}: {error}".splitlines()[0]
        return row, None, {}
    row.convert_s = time.perf_counter() - began
    row.path, row.size_mb = str(path), path.stat().st_size / 1e6
    job.notify("measure", target.name)
    row.quantization = facts.get("quantization")
    data = job.data
    measurement = measure_in_child(target.opener, str(path), facts, data.feeds, data.timing_feeds, job.settings,
                                   data.eval_feeds, data.eval_batch)
    row.status, row.error = measurement.status, measurement.error
    if measurement.status != "ok":
        return row, None, facts
    _fill_timing(row, measurement, job.source_ms)
    if job.reference.status != "ok":
        return row, None, facts
    compare(job.reference.outputs, measurement.outputs, row)
    if job.metric:
        row.metrics = evaluate(job.metric, measurement.eval_outputs[0], data.labels, job.reference.eval_outputs[0])
    if row.status == "ok" and row.sqnr_db < target.parity_floor_db:
        row.status = "parity-failed"
        row.error = f"SQNR {row.sqnr_db:.1f} dB below the {target.parity_floor_db:.0f} dB floor"
    return row, measurement.outputs, facts


def _write_io_contract(artifact: Path, io: dict) -> None:
    """`<artifact>.io.json`: the inputs and outputs in order, with the names, layouts, dtypes and (integer
    I/O) the scales and zero points a device-side caller reads, quantizes and dequantizes with."""
    with atomic_path(artifact.with_name(artifact.name + ".io.json")) as tmp:
        tmp.write_text(json.dumps(io, indent=2))


def _check_quantization_options(targets: list[Target], calib: str | None, eval_path: str | None,
                                max_drop: float | None, trust_code: bool) -> None:
    """What static int8 needs, checked before the model is loaded."""
    static = [t.name for t in targets if t.consumes is IRVariant.QDQ]
    if static and calib is None:
        raise UsageError(
            f"{', '.join(static)} needs calibration data: pass --calib with real input samples (.npz keyed "
            f"by input name, .npy, a folder of images, or file.py:function with --trust-code); "
            f"--calib random only for a smoke test")
    if calib is not None:
        check_data_path(calib, trust_code=trust_code)
    if eval_path is not None:
        check_data_path(eval_path, trust_code=False, flag="--eval")
    if max_drop is not None and not (static and eval_path):
        raise UsageError("--max-drop needs a static int8 target (e.g. --to onnx-qdq) and --eval data to measure "
                         "the drop on")


def _check_engine(engine: str | None, targets) -> None:
    if engine is None:
        return
    if not any(t.runtime == "torch" and t.quantization is not Quantization.NONE for t in targets):
        raise UsageError(f"--engine {engine} applies to torch-int8 and torch-dynamic; none was asked for")
    import torch

    if engine not in torch.backends.quantized.supported_engines:
        raise UsageError(f"--engine {engine}: this torch build has {', '.join(torch.backends.quantized.supported_engines)}")


def _quantize(graph, calib_feeds, quant, eval_feeds, labels, metric, max_drop):
    """The QDQ IR every static int8 target is emitted from, and the layers left float."""
    from qconvert.passes import prepare_for_int8
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.mixed import choose_float_layers
    from qconvert.quant.static import quantize_with_ranges

    graph = prepare_for_int8(graph)
    ranges = calibrate(graph, calib_feeds, quant)
    float_layers: list[str] = []
    if max_drop is not None:
        float_layers = choose_float_layers(graph, ranges, quant, eval_feeds, labels, metric, max_drop)
    return quantize_with_ranges(graph, ranges, quant, set(float_layers)), float_layers


def sensitivity(
    model: str,
    *,
    calib: str,
    out_dir: str | Path = "qconvert-out",
    input_shapes: list[str] | tuple[str, ...] = (),
    weights: str | None = None,
    trust_code: bool = False,
    threads: int | None = None,
    calib_samples: int | None = 256,
    calib_image: ImageOptions = ImageOptions(),
    quant: QuantConfig = QuantConfig(),
    eval_path: str | None = None,
    metric: str | None = None,
    seed: int = 0,
):
    """`qconvert sensitivity`: each static int8 layer's cost (qconvert.quant.sensitivity), written to
    OUT/sensitivity.json. Scored on the --eval set where given, else on the calibration data (SQNR only)."""
    from qconvert.passes import cleanup, prepare_for_int8
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.evaluate import Scorer
    from qconvert.quant.sensitivity import analyze

    out = Path(out_dir)
    check_writable(out)
    check_data_path(calib, trust_code=trust_code)
    source = load_source(model, input_specs=parse_input_shapes(list(input_shapes)), weights=weights,
                         trust_code=trust_code)
    graph = prepare_for_int8(cleanup(source.ir))
    specs = specs_from_ir(graph)
    calib_feeds = load_calibration(calib, specs, samples=calib_samples, trust_code=trust_code,
                                   image=calib_image, seed=seed)
    eval_feeds, labels = load_eval(eval_path, specs) if eval_path else (calib_feeds, None)
    scorer = Scorer(graph, eval_feeds, labels, metric, threads or physical_cores())
    result = analyze(graph, calibrate(graph, calib_feeds, quant), quant, scorer)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "sensitivity.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result

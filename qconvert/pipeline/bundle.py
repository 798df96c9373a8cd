"""Packaging stages: what `qconvert package` needs is kept beside the artifacts, and `--bundle` writes the
deployment bundles once the report is written."""

from __future__ import annotations

from dataclasses import replace

from qconvert.backends.targets import IRVariant
from qconvert.bundle import kept
from qconvert.pipeline.state import ConversionState

EMITTED = ("ok", "parity-failed")  # rows whose artifact was written and run


def keep_for_packaging(state: ConversionState) -> None:
    """OUT/packaging/: the IR variants the emitted artifacts came from, golden samples, the options."""
    emitted = {t.name for t in state.targets} & {r.target for r in state.result.rows if r.status in EMITTED}
    variants = {v: state.variants[v] for v in IRVariant if v in state.variants
                and any(t.consumes is v for t in state.targets if t.name in emitted)}
    if not variants:
        return
    options, data = state.options, state.data
    reference = state.reference.outputs if state.reference and state.reference.status == "ok" else None
    run = kept.run_facts(state.variants[IRVariant.FLOAT], replace(options.emit, quant=options.quant),
                         options.calibration.calib,
                         options.calibration.calib_image, data.parity_data, state.result.metric,
                         _source_files(state.model, options.source.weights))
    kept.keep(state.out, variants, data.feeds, reference, run)


def _source_files(model: str, weights: str | None) -> list[str]:
    """The files the source is read from: the model file (a factory's .py) and its weights."""
    from qconvert.converters.user_code import is_factory_spec, split_factory

    path = str(split_factory(model)[0]) if is_factory_spec(model) else model
    return [path, *([weights] if weights else [])]


def check_bundle(names: list[str], options) -> None:
    """--bundle's targets must be among the conversion's; --micro needs tflite-micro; before any work."""
    from qconvert.bundle import micro
    from qconvert.errors import UsageError

    wanted = options.bundle
    if not wanted.enabled:
        return
    missing = [t for t in wanted.targets if t not in names]
    if missing:
        raise UsageError(f"--bundle {','.join(missing)}: not among the targets converted (--to {','.join(names)})")
    if wanted.micro and micro.available():
        raise UsageError(f"--micro: {micro.available()}")


def write_bundles(state: ConversionState) -> None:
    """--bundle: OUT/bundle-<target>/ for the targets named, or for every target whose artifact passed; then
    the report again, with their section (each bundle's own report.html holds its section only)."""
    wanted = state.options.bundle
    if not wanted.enabled:
        return
    from qconvert.bundle.package import package
    from qconvert.pipeline.report import write_report

    passed = [r.target for r in state.result.rows if r.target != "source" and r.status == "ok"]
    for name in (wanted.targets or passed):
        state.notify("bundle", name)
        runtime = next(t.runtime for t in state.targets if t.name == name)
        record = package(state.out, name, state.out / f"bundle-{name}",
                         micro_extras=wanted.micro and runtime == "LiteRT")
        record.folder = f"bundle-{name}"  # within OUT, where report.json is
        state.result.bundles.append(record)
    write_report(state)

"""`qconvert package RUN_DIR --target T -o BUNDLE`: one artifact of a conversion as a verified deployment bundle.

Everything is written into a temporary folder beside BUNDLE, checked by running the bundle's own verify.py, and
renamed into place at the end, so a failure leaves no bundle at all, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from qconvert.bundle import golden, manifest, micro
from qconvert.bundle.checksums import sha256, write_sums
from qconvert.bundle.run_dir import open_run
from qconvert.bundle.static import static_artifact
from qconvert.errors import QConvertError, UsageError
from qconvert.report.bundles import BundleRecord, bundle_record

VERIFY = Path(__file__).with_name("verify_template.py")
REPORT_HTML = "report.html"


def check_destination(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"package: {out} exists and is not an empty folder; choose another -o or remove it")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)


def package(run_dir: str | Path, target: str, out: str | Path, *, micro_extras: bool = False,
            ethos_u: bool = True) -> BundleRecord:
    """Writes the bundle; returns what the report shows of it (qconvert.report.bundles), verify.py's line
    included."""
    out = Path(out)
    check_destination(out)
    run = open_run(run_dir, target)
    if micro_extras and run.target.runtime != "LiteRT":
        raise UsageError(f"package: --micro applies to TFLite targets, not {target}")
    if micro_extras and micro.available():
        raise UsageError(f"package --micro: {micro.available()}")
    report = _report(run)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        document = _build(run, report, work, out.name, micro_extras, ethos_u)
        record = bundle_record(document, str(out), run_verify(work))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return record


def _report(run):
    """The run's report.json as a ConversionResult, to render the bundle's report.html with its own section."""
    from qconvert.report.load import result_from_dict

    try:
        return result_from_dict(run.report)
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"package: {run.folder / 'report.json'} is not a conversion report this qconvert reads "
                         f"({type(error).__name__}: {error}); convert again") from None


def run_verify(folder: Path) -> str:
    """The bundle's verify.py on the finished folder: its OK line, or the bundle is refused with its FAILED line."""
    process = subprocess.run([sys.executable, str(folder / "verify.py")], capture_output=True, text=True,
                             timeout=900)
    lines = [line for line in (process.stdout + process.stderr).splitlines() if line.startswith("verify: ")]
    if process.returncode != 0 or not lines:
        why = lines[-1] if lines else f"exit {process.returncode}"
        raise QConvertError(f"package: the bundle failed its own verify.py ({why}); nothing was written")
    return lines[-1].removeprefix("verify: ")


def _finite(value):
    """Strict JSON: an infinite SQNR (identical outputs) as "inf", as report.json writes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _build(run, report, folder: Path, name: str, micro_extras: bool, ethos_u: bool) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="qconvert-bundle-"))
    try:
        return _assemble(run, report, folder, name, scratch, micro_extras, ethos_u)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _assemble(run, report, folder: Path, name: str, scratch: Path, micro_extras: bool, ethos_u: bool) -> dict:
    static = static_artifact(run, folder / run.artifact.name)
    io = static.io
    samples = golden.write_inputs(run, io, folder)
    target = manifest.target_record(run)
    spec = {"target": target, "io": io, "golden": {"model": static.path.name, "inputs": golden.INPUTS,
                                                    "expected": golden.EXPECTED}}
    expected = golden.run_expected(folder, spec)
    vs_source, vs_ir = golden.evidence(run, io, expected)
    tolerance = golden.tolerances(expected, io, golden.output_steps(run))
    evidence = golden.Golden(samples, expected, tolerance, vs_source, vs_ir)
    precision = manifest.precision(run)
    artifacts = [(static.path, "model")]
    extras: dict = {"micro": None, "ethos_u": None}
    if run.target.runtime == "onnxruntime":
        from qconvert.bundle import ort_format

        ort, config = ort_format.convert(static.path, folder)
        with __import__("numpy").load(folder / golden.INPUTS) as data:
            inputs = [data[f"input_{i}"] for i in range(len(io["inputs"]))]
        worst = ort_format.max_difference(ort, inputs, expected)
        if any(worst > t.get("atol", t.get("steps", 0)) for t in tolerance):
            raise UsageError(f"package: {ort.name} differs from {static.path.name} by {worst:.3g} on the golden set")
        artifacts += [(ort, "ort-format"), (config, "ort-required-operators")]
        extras["ort_format"] = {"max_difference_vs_onnx": worst, "operators": ort_format.config_operators(config)}
    if run.target.runtime == "LiteRT":
        ops = micro.model_ops(static.path)
        extras["tflite_ops"] = ops
        if micro_extras:
            measured = micro.measure(static.path, folder, expected, scratch)
            (folder / "micro").mkdir()
            for path in micro.write_sources(static.path, folder / "micro", ops, measured.arena_bytes):
                artifacts.append((path, "tflite-micro-source"))
            extras["micro"] = {**measured.to_dict(), "ops": ops,
                               "resolver": [micro.resolver_call(op) for op in ops]}
        if ethos_u and run.target.quantization.value == "static":
            from qconvert.bundle import vela

            extras["ethos_u"] = vela.estimate(static.path, scratch)
    shutil.copyfile(VERIFY, folder / "verify.py")
    document = {
        "schema_version": manifest.SCHEMA_VERSION,
        "qconvert_version": manifest.package_version("qconvert") or "unknown",
        "source": {"model": run.report.get("model"), "framework": run.report.get("framework"),
                   "format": run.report.get("format"), "files": run.kept.run.get("source_files", [])},
        "target": target,
        "artifacts": [manifest.artifact(path, folder, role, precision if role == "model" else "-", sha256(path))
                      for path, role in artifacts],
        "io": io,
        "static_shapes": {"batch": 1, "all_static": not static.dynamic_kept, "dynamic_kept": static.dynamic_kept},
        "preprocessing": run.kept.run.get("preprocessing", {}),
        "postprocessing": manifest.postprocessing(run, io),
        "golden": {**spec["golden"], "samples": samples, "tolerance": tolerance,
                   "expected_from": f"{static.path.name} in {target['runtime']} {target['runtime_version']}"},
        "parity": manifest.parity(run, evidence),
        "micro": extras["micro"],
        "ethos_u": extras["ethos_u"],
        "report_html": {"path": REPORT_HTML, "from": f"{run.folder.name}/report.json and this bundle"},
        **{k: v for k, v in extras.items() if k not in ("micro", "ethos_u")},
    }
    # The conversion's report with this bundle's section (its verify.py has not run yet: its column stays empty).
    from qconvert.report.html import write_html

    report.bundles = [bundle_record(document, name)]
    write_html(report, folder / REPORT_HTML)
    document["artifacts"].append(manifest.artifact(folder / REPORT_HTML, folder, "report", "-",
                                                   sha256(folder / REPORT_HTML)))
    problems = manifest.check(document)
    if problems:  # a bug of ours, never the user's input
        raise RuntimeError(f"manifest does not follow its schema: {'; '.join(problems)}")
    document = _finite(document)
    (folder / "manifest.json").write_text(json.dumps(document, indent=2, allow_nan=False))
    from qconvert.bundle.card import model_card

    (folder / "README.md").write_text(model_card(document))
    write_sums(folder)
    return document

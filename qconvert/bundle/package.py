"""`qconvert package RUN_DIR --target T -o BUNDLE`: one artifact of a conversion as a verified deployment bundle.

Everything is written into a temporary folder beside BUNDLE and renamed into place at the end, so a failure
leaves no bundle at all, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from qconvert.bundle import golden, manifest, micro
from qconvert.bundle.checksums import sha256, write_sums
from qconvert.bundle.run_dir import open_run
from qconvert.bundle.static import static_artifact
from qconvert.errors import UsageError

VERIFY = Path(__file__).with_name("verify_template.py")
REPORT_HTML = "report.html"


def check_destination(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"package: {out} exists and is not an empty folder; choose another -o or remove it")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)


def package(run_dir: str | Path, target: str, out: str | Path, *, micro_extras: bool = False,
            ethos_u: bool = True) -> dict:
    """Writes the bundle; returns its manifest."""
    out = Path(out)
    check_destination(out)
    run = open_run(run_dir, target)
    if micro_extras and run.target.runtime != "LiteRT":
        raise UsageError(f"package: --micro applies to TFLite targets, not {target}")
    if micro_extras and micro.available():
        raise UsageError(f"package --micro: {micro.available()}")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        document = _build(run, work, micro_extras, ethos_u)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return document


def _finite(value):
    """Strict JSON: an infinite SQNR (identical outputs) as "inf", as report.json writes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _build(run, folder: Path, micro_extras: bool, ethos_u: bool) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="qconvert-bundle-"))
    try:
        return _assemble(run, folder, scratch, micro_extras, ethos_u)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _assemble(run, folder: Path, scratch: Path, micro_extras: bool, ethos_u: bool) -> dict:
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
    html = run.folder / REPORT_HTML
    if html.is_file():
        shutil.copyfile(html, folder / REPORT_HTML)
        artifacts.append((folder / REPORT_HTML, "report"))
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
        "report_html": {"path": REPORT_HTML} if html.is_file() else
                       {"path": None, "absent": f"{run.folder.name}/{REPORT_HTML} did not exist when bundled"},
        **{k: v for k, v in extras.items() if k not in ("micro", "ethos_u")},
    }
    problems = manifest.check(document)
    if problems:  # a bug of ours, never the user's input
        raise RuntimeError(f"manifest does not follow its schema: {'; '.join(problems)}")
    document = _finite(document)
    (folder / "manifest.json").write_text(json.dumps(document, indent=2, allow_nan=False))
    from qconvert.bundle.card import model_card

    (folder / "README.md").write_text(model_card(document))
    write_sums(folder)
    return document

"""manifest.json: what a device-side caller needs to know about a bundle, in one versioned JSON document.

SCHEMA lists the required keys and their types (tests check bundles against it); a change that breaks a reader
raises SCHEMA_VERSION.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from qconvert.bundle.run_dir import Run

SCHEMA_VERSION = 1

SCHEMA = {
    "schema_version": int, "qconvert_version": str, "source": dict, "target": dict, "artifacts": list, "io": dict,
    "static_shapes": dict, "preprocessing": dict, "postprocessing": dict, "golden": dict, "parity": dict,
    "micro": (dict, type(None)), "ethos_u": (dict, type(None)), "report_html": dict,
}
ARTIFACT_KEYS = {"path": str, "sha256": str, "size_bytes": int, "precision": str, "role": str}
PORT_KEYS = {"name": str, "index": int, "dtype": str, "shape": list, "layout": str}

RUNTIME_PACKAGES = {"LiteRT": ("ai_edge_litert", "ai-edge-litert"), "onnxruntime": ("onnxruntime", "onnxruntime"),
                    "torch": ("torch", "torch")}
PRECISION = {"fp32": "float32", "fp16": "float16 weights and compute", "bf16": "bfloat16 weights and compute",
             "dynamic": "int8 weights, float activations (dynamic)", "qdq": "int8 (QDQ: weights and activations)",
             "int8": "int8 (full integer)", "uint8": "int8 inside, uint8 inputs and outputs (full integer)"}


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def target_record(run: Run) -> dict:
    module, distribution = RUNTIME_PACKAGES[run.target.runtime]
    record = {"name": run.target.name, "runtime": run.target.runtime, "python_module": module,
              "pip": distribution, "runtime_version": package_version(distribution),
              "description": run.target.description}
    if run.target.runtime == "torch" and run.target.quantization.value != "none":
        # The int8 weights are packed for one engine; verify.py and a caller must select it.
        record["engine"] = run.kept.run["emit"].get("torch_engine") or "x86"
    return record


def precision(run: Run) -> str:
    return PRECISION.get(run.target.name.split("-", 1)[1], run.target.description)


def artifact(path: Path, folder: Path, role: str, precision_text: str, sha: str) -> dict:
    return {"path": path.relative_to(folder).as_posix(), "sha256": sha, "size_bytes": path.stat().st_size,
            "precision": precision_text, "role": role}


def postprocessing(run: Run, io: dict) -> dict:
    """What the outputs hold, from the metric the conversion inferred or was given: class scores (top-1), a
    mask (Dice), or other. No label names are known to a conversion."""
    metric = run.report.get("metric") or run.kept.run.get("metric")
    shapes = [port["shape"] for port in io["outputs"]]
    if metric == "top1" or (metric is None and run.row.get("top1_agreement") is not None):
        kind = "class scores (argmax over the last axis is the class)"
    elif metric == "dice":
        kind = "mask (per-pixel probability; threshold 0.5)"
    else:
        kind = "other"
    return {"kind": kind, "metric": metric, "labels": None, "output_shapes": shapes}


def parity(run: Run, golden) -> dict:
    """The conversion's evidence for this target (report.json), and the golden set's."""
    row = run.row
    matrix = [entry for entry in run.report.get("int8_parity") or []
              if run.target.name in (entry.get("a"), entry.get("b"))]
    return {"from_report": {key: row.get(key) for key in ("sqnr_db", "ir_sqnr_db", "max_abs_error",
                                                           "top1_agreement", "metrics")},
            "parity_data": run.report.get("parity_data"), "parity_samples": run.report.get("parity_samples"),
            "metric": run.report.get("metric"), "floor_db": run.target.parity_floor_db,
            "int8_parity": matrix,
            "golden": {"sqnr_vs_source_db": golden.sqnr_vs_source_db, "sqnr_vs_ir_db": golden.sqnr_vs_ir_db,
                       "samples": golden.samples}}


def check(manifest: dict) -> list[str]:
    """What in a manifest does not follow SCHEMA (empty when it does)."""
    problems = [f"{key}: missing or not {kind}" for key, kind in SCHEMA.items()
                if not isinstance(manifest.get(key), kind)]
    for entry in manifest.get("artifacts") or []:
        problems += [f"artifacts[{entry.get('path')}].{k}" for k, kind in ARTIFACT_KEYS.items()
                     if not isinstance(entry.get(k), kind)]
    for kind in ("inputs", "outputs"):
        for port in (manifest.get("io") or {}).get(kind, []):
            problems += [f"io.{kind}[{port.get('name')}].{k}" for k, t in PORT_KEYS.items()
                         if not isinstance(port.get(k), t)]
            if not isinstance(port.get("shape"), list) or not all(isinstance(d, int) for d in port["shape"]):
                problems.append(f"io.{kind}[{port.get('name')}].shape is not static")
    return problems

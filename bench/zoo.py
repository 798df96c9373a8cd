"""`make zoo`: every zoo model (models/zoo/) to every float target, the matrix written to bench/ZOO.md.

    python -m bench.zoo --out bench/ZOO.md [--only NAME ...] [--family FAMILY ...] [--to T,T,...]
                        [--calib random] [--timeout S] [--report-only]

Missing model files are built first (python -m models.zoo.build). Each model is converted by the CLI in
its own subprocess (a crash or a hang costs one row, not the run); its result is kept in
build/zoo/results/NAME.json, so `--only NAME` refreshes one row and the Markdown is rebuilt from every
result on disk. A cell passes when the target's SQNR against the source framework reaches its floor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.machine import describe
from models.zoo.registry import FAMILIES, ZooModel, all_models, select

FLOAT_TARGETS = ("onnx-fp32", "onnx-fp16", "tflite-fp32", "tflite-fp16", "torch-fp32", "torch-fp16", "torch-bf16")
FLOORS_DB = {"fp32": 60.0, "fp16": 30.0, "bf16": 20.0}  # by the target's precision suffix
ZOO = Path("build/zoo")
PARITY_SAMPLES = 8
PYTHON = sys.executable


def floor_db(target: str) -> float | None:
    return FLOORS_DB.get(target.rsplit("-", 1)[-1])


def domain_samples(model: ZooModel) -> Path | None:
    """For a model whose inputs are not standard normal (pixels it rescales itself), an .npz of samples in
    its domain, given to qconvert as --calib: parity then runs on them (and int8 calibrates on them), as it
    would on a user's images. None for the others, which keep qconvert's random samples."""
    if all(spec.value_range is None for spec in model.inputs):
        return None
    path = ZOO / "samples" / f"{model.name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = model.sample_inputs(PARITY_SAMPLES, seed=7)
    np.savez(path, **{spec.name: array for spec, array in zip(model.inputs, arrays)})
    return path


def _without_calib(extra: list[str]) -> list[str]:
    if "--calib" not in extra:
        return extra
    i = extra.index("--calib")
    return extra[:i] + extra[i + 2:]


def convert_command(model: ZooModel, targets: list[str], extra: list[str]) -> list[str]:
    samples = domain_samples(model)
    data = ["--calib", str(samples)] if samples else []
    return [PYTHON, "-m", "qconvert", str(ZOO / model.file), "--to", ",".join(targets), "-o",
            str(ZOO / "out" / model.name.replace(".", "_")), "--json", "--samples", str(PARITY_SAMPLES),
            "--runs", "3", *model.cli_args(), *(_without_calib(extra) if samples else extra), *data]


def _run(command: list[str], timeout: float) -> tuple[int | None, str, str, float]:
    """Runs in its own process group so that a timeout also ends the runtimes' child processes."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = None
    return code, stdout, stderr, time.perf_counter() - start


def run_saved(models: list[ZooModel], results: Path, run_one, timeout: float, report_only: bool) -> list[dict]:
    """Each model's result: `run_one(model, timeout)` saved as results/NAME.json, or with `report_only`
    the saved ones read back (models without one are left out)."""
    results.mkdir(parents=True, exist_ok=True)
    found = []
    for model in models:
        saved = results / f"{model.name}.json"
        if report_only:
            if saved.exists():
                found.append(json.loads(saved.read_text()))
            continue
        began = time.perf_counter()
        result = run_one(model, timeout)
        saved.write_text(json.dumps(result, indent=2))
        found.append(result)
        print(f"{model.name}: {time.perf_counter() - began:.0f} s", flush=True)
    return found


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qconvert: error:")]
    if errors:
        return errors[-1].removeprefix("qconvert: error:").strip()
    return lines[-1] if lines else "no output"


TFLITE_FACTS = """
import json, sys
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1])
ops = [op["op_name"] for op in interpreter._get_ops_details()]
inputs = interpreter.get_input_details()
print(json.dumps({"transposes": ops.count("TRANSPOSE"), "ops": len(ops),
                  "dynamic_batch": all(len(d["shape_signature"]) and d["shape_signature"][0] == -1 for d in inputs)}))
"""


def tflite_facts(path: str) -> dict | None:
    """TRANSPOSE count and whether every input's batch is dynamic, read from the file (own process: a
    broken flatbuffer must not take the harness down)."""
    code, stdout, stderr, _ = _run([PYTHON, "-c", TFLITE_FACTS, path], timeout=120)
    if code != 0:
        return {"error": _last_error(stderr)}
    return json.loads(stdout.strip().splitlines()[-1])


def convert_one(model: ZooModel, targets: list[str], extra: list[str], timeout: float) -> dict:
    command = convert_command(model, targets, extra)
    code, stdout, stderr, seconds = _run(command, timeout)
    result = {"name": model.name, "family": model.family, "format": model.format, "targets": targets,
              "command": shlex.join(["qconvert", *command[3:]]), "seconds": round(seconds, 1), "returncode": code}
    report = None
    if code is None:
        result["error"] = f"timed out after {timeout:.0f} s"
    else:
        try:
            report = json.loads(stdout)
        except json.JSONDecodeError:
            result["error"] = _last_error(stderr)
    if report is not None:
        result["load_s"] = report.get("load_s")
        result["rows"] = {row["target"]: {k: row.get(k) for k in ("status", "sqnr_db", "convert_s", "error", "path")}
                          for row in report["rows"]}
        tflite = result["rows"].get("tflite-fp32", {})
        if tflite.get("path") and tflite.get("status") != "failed" and Path(tflite["path"]).exists():
            result["tflite_fp32"] = tflite_facts(tflite["path"])
    return result


def cell_status(result: dict, target: str) -> tuple[bool, str, str | None]:
    """(passed, cell text, failure reason or None) for one model x target."""
    if result.get("pending"):
        return False, "not run", None
    if "error" in result:
        return False, "source failed", None
    row = result.get("rows", {}).get(target)
    if row is None:
        return False, "not run", f"{target} not in the run"
    seconds = f" ({row['convert_s']:.1f} s)" if isinstance(row.get("convert_s"), (int, float)) else ""
    if row["status"] == "failed" or row.get("sqnr_db") is None:
        reason = (row.get("error") or row["status"]).splitlines()[0]
        return False, _short(reason) + seconds, reason
    sqnr = row["sqnr_db"]
    value = float("inf") if sqnr == "inf" else float(sqnr)
    text = "exact" if value == float("inf") else f"{value:.1f}"
    floor = floor_db(target)
    if floor is not None and value < floor:
        return False, f"**{text}** < {floor:.0f}{seconds}", f"SQNR below the {floor:.0f} dB floor"
    return True, text + seconds, None


def _short(reason: str, limit: int = 90) -> str:
    reason = reason.replace("|", "/")
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def reason_key(reason: str) -> str:
    """Groups failures that differ only in names and measured values: quoted names, numbered node names
    (conv_12) and decimals are masked; plain integers (a floor, a rank) stay."""
    key = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "'…'", reason)
    return re.sub(r"(?<=[A-Za-z_])\d+|\d+\.\d+", "N", key)


def render(results: list[dict], targets: list[str], commands: list[str]) -> str:
    lines = [
        "# qconvert model zoo", "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {describe()}",
        "- commands: " + "; ".join(f"`{c}`" for c in commands),
        "- per model: `qconvert FILE --to TARGETS -o build/zoo/out/NAME --json --samples 8 --runs 3 [source flags]` "
        "(the exact line is in build/zoo/results/NAME.json); models: models/zoo/, random seeded weights with "
        "perturbed BatchNorm statistics",
        "- cell: SQNR in dB against the source in its own framework (conversion seconds), or the one-line error; "
        "floors: " + ", ".join(f"{k} ≥ {v:.0f} dB" for k, v in FLOORS_DB.items()),
        "- `T` / `dyn`: TRANSPOSE ops in the tflite-fp32 artifact and whether its batch is dynamic", "",
    ]
    header = ["model", "format", "load s", *targets, "T", "dyn"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    passes = defaultdict(int)
    failures = defaultdict(lambda: {"example": "", "cells": []})
    for family in FAMILIES:
        group = [r for r in results if r["family"] == family]
        if not group:
            continue
        lines.append(f"| **{family}** |" + " |" * (len(header) - 1))
        for result in group:
            cells = []
            for target in targets:
                ok, text, reason = cell_status(result, target)
                passes[target] += ok
                cells.append(text)
                if reason:
                    entry = failures[reason_key(reason)]
                    entry["example"] = entry["example"] or reason
                    entry["cells"].append(f"{result['name']}:{target}")
            if "error" in result:
                entry = failures["source: " + reason_key(result["error"])]
                entry["example"] = entry["example"] or "source: " + result["error"]
                entry["cells"].append(f"{result['name']} (all targets)")
                cells[0] = "source: " + _short(result["error"], 150)
            facts = result.get("tflite_fp32") or {}
            transposes = str(facts.get("transposes", "")) if "error" not in facts else "?"
            dynamic = {True: "yes", False: "**no**"}.get(facts.get("dynamic_batch"), "")
            load = f"{result['load_s']:.1f}" if isinstance(result.get("load_s"), (int, float)) else ""
            lines.append("| " + " | ".join([result["name"], result["format"], load, *cells, transposes, dynamic]) + " |")
    total = sum(not r.get("pending") for r in results)
    pending = [r["name"] for r in results if r.get("pending")]
    if pending:
        lines += ["", f"Not converted in this run ({len(pending)}; `python -m bench.zoo --missing` converts them): "
                  + ", ".join(pending)]
    lines += ["", f"## Passing cells per target ({total} models converted, {len(results)} in the zoo)", "",
              "| target | floor dB | passed |", "|---|---|---|"]
    for target in targets:
        floor = floor_db(target)
        lines.append(f"| {target} | {floor if floor is not None else '-'} | {passes[target]} / {total} |")
    lines.append(f"| all | | {sum(passes.values())} / {total * len(targets)} |")
    lines += ["", "## Failure reasons", "", "| cells | reason (first instance) | where |", "|---|---|---|"]
    for key, entry in sorted(failures.items(), key=lambda item: (-len(item[1]["cells"]), item[0])):
        where = ", ".join(entry["cells"][:12]) + (f", … ({len(entry['cells'])})" if len(entry["cells"]) > 12 else "")
        lines.append(f"| {len(entry['cells'])} | {_short(entry['example'], 240)} | {where} |")
    done = [r for r in results if not r.get("pending")]
    slowest = sorted(done, key=lambda r: -r["seconds"])[:5]
    lines += ["", "Whole-run seconds per model (slowest): " + ", ".join(f"{r['name']} {r['seconds']:.0f}" for r in slowest)
              + f"; all {total}: {sum(r['seconds'] for r in done) / 60:.1f} min of subprocess time.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/ZOO.md")
    parser.add_argument("--only", nargs="*", help="zoo names (models/zoo/registry.py)")
    parser.add_argument("--family", nargs="*", choices=FAMILIES)
    parser.add_argument("--to", default=",".join(FLOAT_TARGETS), help="targets, comma separated")
    parser.add_argument("--calib", help="passed to qconvert (e.g. 'random' for int8 targets)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per model")
    parser.add_argument("--jobs", type=int, default=1, help="models converted at once (each in its own process)")
    parser.add_argument("--threads", type=int, help="qconvert --threads for every runtime [physical cores]")
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the saved results")
    parser.add_argument("--missing", action="store_true", help="convert only the models that have no saved result")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.to.split(",") if t.strip()]
    extra = (["--calib", args.calib] if args.calib else []) + (["--threads", str(args.threads)] if args.threads else [])
    models = select(args.only, args.family)
    results_dir = ZOO / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.missing:
        models = [m for m in models if not (results_dir / f"{m.name}.json").exists()]
    if not args.report_only:
        from models.zoo.build import build

        build_errors = build(ZOO, models)

        def run(model: ZooModel) -> None:
            if model.name in build_errors:
                result = {"name": model.name, "family": model.family, "format": model.format, "targets": targets,
                          "command": "python -m models.zoo.build", "seconds": 0.0, "returncode": None,
                          "error": "build failed: " + build_errors[model.name]}
            else:
                result = convert_one(model, targets, extra, args.timeout)
            (results_dir / f"{model.name}.json").write_text(json.dumps(result, indent=2) + "\n")
            status = result.get("error") or " ".join(
                f"{t}={'ok' if cell_status(result, t)[0] else 'x'}" for t in targets)
            print(f"{model.name:32s} {result['seconds']:6.1f}s  {_short(status, 160)}", flush=True)

        # Threads only wait on the subprocesses; the conversions run in their own processes.
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(run, models))
    # The Markdown covers every zoo model, in registry order, with this run's targets; a model without a
    # saved result shows as not run.
    results = [json.loads(path.read_text()) if (path := results_dir / f"{m.name}.json").exists()
               else {"name": m.name, "family": m.family, "format": m.format, "pending": True} for m in all_models()]
    command = "make zoo" if not (args.only or args.family) else shlex.join(["python", "-m", "bench.zoo", *(argv or sys.argv[1:])])
    commands = [command, "python -m models.zoo.build --out build/zoo"]
    Path(args.out).write_text(render(results, targets, commands))
    print(f"wrote {args.out} ({len(results)} models)")


if __name__ == "__main__":
    main()

"""The zoo's CNNs through every static int8 target, written to bench/ZOO_INT8.md.

    python -m bench.zoo_int8 [--only NAME ...] [--timeout 900]

Per model (models/zoo/, random seeded weights, built by `python -m models.zoo.build`): one qconvert run
to onnx-qdq, tflite-int8, tflite-uint8 and torch-int8, calibrated on random standard-normal samples (the
domain of a torchvision model's normalized input) or, for a model that rescales pixels itself, on
samples in its pixel domain (bench/zoo.py domain_samples). From each report: every artifact's SQNR
against the source, its full-integer facts (onnx-qdq: the compute ops onnxruntime's optimized graph still
runs in float; tflite: float ops and inner QUANTIZE/DEQUANTIZE; torch-int8: float fallbacks), and the
int8 artifacts against each other (the report's int8 parity matrix: its lowest SQNR).

Reading it: on these random-weight nets int8 against float is 5-12 dB where the net is deep (resnet50,
EfficientNet, MobileNets) and 35-39 dB on the shallow SqueezeNet; the same nets cast to bf16 lose as much
(bench/ZOO_PRECISION.md: the framework's own cast). A one-step rounding difference between two int8
kernels grows through them like the quantization noise itself, so the int8 artifacts agree with each
other at 8-19 dB there and at 34 dB on SqueezeNet.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections import Counter
from pathlib import Path

from bench.machine import describe
from bench.zoo import ZOO, _run, convert_command, run_saved
from models.zoo.registry import select
from qconvert.report.result import float_compute

TARGETS = ["onnx-qdq", "tflite-int8", "tflite-uint8", "torch-int8"]
CNN_FAMILIES = ("torchvision", "keras")
RESULTS = Path("build/zoo/results_int8")


def float_facts(quantization: dict | None) -> list[str]:
    """What the artifact runs in float, an entry per op (empty: full integer between its inputs and outputs)."""
    if not quantization:
        return ["?"]
    found = [op for op, count in float_compute(quantization).items() for _ in range(count)]
    if quantization.get("inner_quantize_ops"):
        found.append(f"{quantization['inner_quantize_ops']} inner QUANTIZE/DEQUANTIZE")
    return found


def run_one(model, timeout: float) -> dict:
    command = convert_command(model, TARGETS, ["--calib", "random"])
    code, stdout, stderr, seconds = _run(command, timeout)
    result = {"name": model.name, "seconds": round(seconds, 1), "command": " ".join(["qconvert", *command[3:]])}
    try:
        report = json.loads(stdout)
    except (json.JSONDecodeError, TypeError):
        result["error"] = f"timed out after {timeout:.0f} s" if code is None else (stderr.strip().splitlines() or
                                                                                    ["no output"])[-1][:200]
        return result
    result["rows"] = {row["target"]: {"status": row["status"], "sqnr_db": row.get("sqnr_db"),
                                      "error": row.get("error"),
                                      "float": float_facts(row.get("quantization"))}
                      for row in report["rows"] if row["target"] in TARGETS}
    result["parity"] = report.get("int8_parity") or []
    return result


def db(value) -> float:
    """A report's SQNR: a number, or "inf" for identical outputs."""
    return float("inf") if value == "inf" else float(value)


def cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    if row["status"] == "failed" or row.get("sqnr_db") is None:
        return (row.get("error") or row["status"]).replace("|", "/")[:80]
    text = f"{db(row['sqnr_db']):.1f}"
    if not row["float"]:
        return text + " (int)"
    counts = Counter(f.split()[0] for f in row["float"])
    return text + " (float: " + ", ".join(f"{n}× {op}" for op, n in counts.items()) + ")"


def render(results: list[dict], command: str) -> str:
    lines = ["# Zoo CNNs through static int8", "", f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- machine: {describe()}", f"- command: `{command}`; per model the exact qconvert line is in "
             f"{RESULTS}/NAME.json", "", (__doc__ or "").split("\n\n", 1)[1].strip(), "",
             "Cells: SQNR dB against the source (what runs in float, or `int` for full integer). Matrix: the lowest "
             "SQNR between two int8 artifacts, and that pair.", "",
             "| model | " + " | ".join(TARGETS) + " | int8 vs int8: lowest dB (pair) | s |",
             "|" + "---|" * (len(TARGETS) + 3)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | " + " | ".join(["source failed"] * len(TARGETS)) + f" | {r['error']} | "
                         f"{r['seconds']:.0f} |")
            continue
        worst = min(r["parity"], key=lambda p: db(p["sqnr_db"]), default=None)
        pair = f"{db(worst['sqnr_db']):.1f} ({worst['a']} / {worst['b']})" if worst else "-"
        lines.append(f"| {r['name']} | " + " | ".join(cell(r["rows"].get(t)) for t in TARGETS)
                     + f" | {pair} | {r['seconds']:.0f} |")
    full = sum(1 for r in results for t in TARGETS if r.get("rows", {}).get(t, {}).get("float") == []
               and r["rows"][t]["status"] != "failed")
    agree = sum(1 for r in results if r.get("parity") and min(db(p["sqnr_db"]) for p in r["parity"]) >= 30)
    lines += ["", f"Full-integer artifacts: {full} / {len(results) * len(TARGETS)}; models whose int8 artifacts all "
              f"agree at >= 30 dB: {agree} / {len(results)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default="bench/ZOO_INT8.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the saved results")
    args = parser.parse_args(argv)
    models = [m for m in select(args.only) if m.family in CNN_FAMILIES and (ZOO / m.file).exists()]
    results = run_saved(models, RESULTS, run_one, args.timeout, args.report_only)
    command = "python -m bench.zoo_int8" + (f" --only {' '.join(args.only)}" if args.only else "")
    Path(args.out).write_text(render(results, command))
    print(render(results, command))


if __name__ == "__main__":
    main()

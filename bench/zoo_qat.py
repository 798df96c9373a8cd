"""Quantization-aware training on every zoo model, written to bench/ZOO_QAT.md.

    python -m bench.zoo_qat [--only NAME ...] [--timeout 900] [--report-only]

Per model (models/zoo/, random seeded weights, built by `python -m models.zoo.build`): one qconvert run
with `--qat` to onnx-qdq, torch-int8 and tflite-int8, on 16 training samples in the model's input domain
without labels (models.zoo.registry sample_inputs; the float IR's outputs are distilled), one epoch at
batch 8, calibrated as bench/zoo.py calibrates. What it shows is that one training path serves every
architecture and source format: the QDQ IR becomes a torch program, trains, is written back, and every
int8 backend lowers the trained IR or refuses it at emit time with its reason. It measures no accuracy:
random weights have none to recover, and their PTQ IR is already what distillation on 16 samples aims
at: without --eval, QAT keeps the epoch with the lowest loss on its training data, epoch 0 (the PTQ IR
with its weight scales searched, qconvert/train/weight_scales.py) included, and the "kept" column says
which. The SQNR columns are the QDQ IR against the float source before QAT (plain PTQ) and after, and each
artifact's SQNR against the trained IR it was lowered from.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from bench.machine import describe
from bench.zoo import ZOO, _last_error, _run, convert_command, run_saved
from models.zoo.registry import select

TARGETS = ["onnx-qdq", "torch-int8", "tflite-int8"]
RESULTS = Path("build/zoo/results_qat")
TRAIN_SAMPLES, EPOCHS, BATCH = 16, 1, 8


def train_samples(model) -> Path:
    path = ZOO / "samples" / f"{model.name}_train.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = model.sample_inputs(TRAIN_SAMPLES, seed=3)
    np.savez(path, **{spec.name: array for spec, array in zip(model.inputs, arrays)})
    return path


def run_one(model, timeout: float) -> dict:
    train = str(train_samples(model))
    extra = ["--calib", train, "--qat", "--train", train, "--epochs", str(EPOCHS), "--train-batch", str(BATCH)]
    command = convert_command(model, TARGETS, extra)
    code, stdout, stderr, seconds = _run(command, timeout)
    result = {"name": model.name, "seconds": round(seconds, 1), "command": " ".join(["qconvert", *command[3:]])}
    try:
        report = json.loads(stdout)
    except (json.JSONDecodeError, TypeError):
        result["error"] = f"timed out after {timeout:.0f} s" if code is None else _last_error(stderr)[:200]
        return result
    result["rows"] = {row["target"]: {"status": row["status"], "sqnr_db": row.get("sqnr_db"),
                                      "ir_sqnr_db": row.get("ir_sqnr_db"), "error": row.get("error")}
                      for row in report["rows"] if row["target"] in TARGETS}
    runs = [run for run in report.get("training") or [] if run["stage"] == "qat"]
    if runs:
        run = runs[0]
        timed = [e["seconds"] for e in run["epochs"] if e["epoch"] > 0]
        result["qat"] = {"loss": run.get("loss"), "batchnorm": run.get("batchnorm"), "kept": run.get("best_epoch"),
                         "losses": [e["loss"] for e in run["epochs"]],
                         "epoch_s": sum(timed) / len(timed) if timed else None,
                         "before_db": (run.get("before") or {}).get("sqnr_db"),
                         "after_db": (run.get("after") or {}).get("sqnr_db")}
    return result


def db(value) -> str:
    return "-" if value is None else ("inf" if value == "inf" else f"{float(value):.1f}")


def cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    if row["status"] == "ok":
        return db(row.get("ir_sqnr_db"))
    reason = (row.get("error") or row["status"]).split(" is not supported by target")[0]
    return f"{row['status']}: {reason}".replace("|", "/")[:110]


def trained(result: dict) -> bool:
    return "qat" in result


def render(results: list[dict], command: str) -> str:
    lines = ["# Quantization-aware training over the zoo", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}", f"- machine: {describe()}",
             f"- command: `{command}`; per model the exact qconvert line is in {RESULTS}/NAME.json", "",
             (__doc__ or "").split("\n\n", 1)[1].strip(), "",
             "| model | loss: before → epoch 1 (its mean) | kept | BatchNorm | s / epoch | QDQ IR vs source: before → after dB | "
             + " | ".join(f"{t} vs trained IR" for t in TARGETS) + " | s |",
             "|" + "---|" * (len(TARGETS) + 7)]
    for r in results:
        if not trained(r):
            why = r.get("error") or next((row.get("error") for row in r.get("rows", {}).values()
                                          if row.get("error")), "no training run")
            lines.append(f"| {r['name']} | not trained: {why.replace('|', '/')[:160]} |" + " |" * (len(TARGETS) + 4)
                         + f" {r['seconds']:.0f} |")
            continue
        q = r["qat"]
        epoch = f"{q['epoch_s']:.1f}" if q["epoch_s"] is not None else "-"
        losses = " → ".join(f"{value:.3g}" for value in q.get("losses", []))
        lines.append(f"| {r['name']} | {q['loss']}: {losses} | {q.get('kept', '-')} | {q['batchnorm']} | {epoch} | "
                     f"{db(q['before_db'])} → "
                     f"{db(q['after_db'])} | " + " | ".join(cell(r["rows"].get(t)) for t in TARGETS)
                     + f" | {r['seconds']:.0f} |")
    lowered = sum(1 for r in results if trained(r) for t in TARGETS if r["rows"].get(t, {}).get("status") == "ok")
    refused = sum(1 for r in results if trained(r) for t in TARGETS
                  if r["rows"].get(t, {}).get("status") == "failed")
    improved = sum(1 for r in results if trained(r) and r["qat"].get("kept"))
    lines += ["", f"Trained: {sum(map(trained, results))} / {len(results)} models ({improved} kept their trained "
              f"epoch; for the rest the epoch raised the loss, so the PTQ IR came back). Artifacts lowered from "
              f"the trained IR and agreeing with it at the parity floor: {lowered} of "
              f"{sum(map(trained, results)) * len(TARGETS)}; refused at emit time: {refused} (the reason in the "
              f"cell); the rest lowered below the floor (parity-failed, with its SQNR).", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default="bench/ZOO_QAT.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the saved results")
    args = parser.parse_args(argv)
    models = [m for m in select(args.only) if (ZOO / m.file).exists()]
    results = run_saved(models, RESULTS, run_one, args.timeout, args.report_only)
    command = "python -m bench.zoo_qat" + (f" --only {' '.join(args.only)}" if args.only else "")
    Path(args.out).write_text(render(results, command))
    print(render(results, command))


if __name__ == "__main__":
    main()

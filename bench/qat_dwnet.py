"""Part of `make bench`: issue #14's acceptance lines on the depthwise reference, written to bench/QAT_DWNET.md.

The MobileNet v1 reference (models/dwnet_torch.py, built by models.build with a dead depthwise channel)
quantized with one int8 weight scale per tensor (`--weight-granularity per-tensor`), each run one
`qconvert` command line on the digits evaluation set, all three int8 targets in every run:

- PTQ: calibration only. d = float top-1 - tflite-int8 top-1 (the issue expects d >= 3 points).
- QAT with labels: `--qat --train dwnet_train.npz --epochs 3` at the default rate (Adam 1e-4), the
  weight scales starting at each layer's least output error (qconvert/train/weight_scales.py).
- QAT distilled: the same training inputs without their `labels` (a copy of the .npz written here), so
  the float model's outputs are the targets (qconvert/train/data.py).
- AdaRound: `--adaround` on the calibration samples, scales kept.
- Weight scales: `--search-weight-scales` on the calibration samples, no training: the scales QAT starts
  from, as a PTQ refinement of their own.

Acceptance (issue #14): QAT with labels within 0.5 points of float in onnx-qdq, torch-int8 and tflite-int8;
distilled within 0.5 points of QAT with labels (same target); AdaRound's tflite-int8 drop at most d / 2.
No setting here is chosen per model: every option not named is qconvert's default.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np

from bench.machine import describe
from qconvert.report.format import counts_text
from qconvert.report.result import float_compute

WORK = Path("build/bench/qat_dwnet")
TARGETS = ("onnx-qdq", "torch-int8", "tflite-int8")
WITHIN = 0.5  # points of top-1


def command(options, name: str, extra: list[str]) -> list[str]:
    models = Path(options.models)
    return [".venv/bin/qconvert", str(models / "dwnet.pt2"), "--batch", "32", "--to", ",".join(TARGETS),
            "--weight-granularity", "per-tensor", "--calib", str(models / "dwnet_calib.npz"),
            "--eval", str(models / "dwnet_eval.npz"), "--threads", str(options.threads),
            "--runs", str(options.runs), "-o", str(WORK / name), *extra]


def run(options, name: str, extra: list[str]) -> dict:
    """One qconvert run: its command line, wall seconds and top-1 per row (source and each target)."""
    argv = command(options, name, extra)
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - began
    # A row below the int8 parity floor exits 1 with its metrics in the report (per-tensor weights are
    # expected to lose here); no report is a failure.
    report_path = WORK / name / "report.json"
    if not report_path.is_file():
        raise SystemExit(f"bench.qat_dwnet: {name} failed (exit {done.returncode}) without a report: "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    report = json.loads(report_path.read_text())
    top1 = {row["target"]: (row["metrics"] or {}).get("top1") for row in report["rows"]}
    statuses = {row["target"]: row["status"] for row in report["rows"] if row["status"] != "ok"}
    in_float = {row["target"]: counts_text(float_compute(row.get("quantization"))) for row in report["rows"]}
    print(f"{name}: {wall:.0f} s, " + ", ".join(f"{t} {v:.2f}" for t, v in top1.items() if v is not None),
          flush=True)
    return {"command": shlex.join(argv), "wall_s": wall, "top1": top1, "exit": done.returncode,
            "not_ok": statuses, "training": report.get("training", []),
            "in_float": {target: ops for target, ops in in_float.items() if ops}}


def training_lines(runs: dict) -> list[str]:
    """Per QAT run: the QDQ IR's top-1 by epoch (epoch 0: the searched weight scales, before any step), the
    epoch kept, and what the weight-scale search changed."""
    lines = []
    for name, facts in runs.items():
        for stage in facts["training"]:
            if stage["stage"] != "qat":
                continue
            epochs = ", ".join(f"{e['epoch']}: {e['metric']['top1']:.2f}" for e in stage["epochs"]
                               if (e.get("metric") or {}).get("top1") is not None)
            searched = [layer for layer in (stage.get("layers") or {}).get("layers", []) if "changed" in layer]
            moved = [layer for layer in searched if layer["changed"]]
            smallest = min((layer["smallest_alpha"] for layer in moved), default=1.0)
            lines.append(f"- {name}: QDQ IR top-1 in onnxruntime by epoch ({epochs}); kept epoch "
                         f"{stage['best_epoch']}; the weight-scale search moved {len(moved)} of {len(searched)} "
                         f"layers' scales (smallest factor {smallest:.4g})")
    return lines


def unlabelled_copy(models: Path) -> Path:
    """dwnet_train.npz without its labels: qconvert then distills the float model's outputs."""
    path = WORK / "dwnet_train_nolabels.npz"
    with np.load(models / "dwnet_train.npz") as data:
        np.savez(path, **{key: data[key] for key in data.files if key != "labels"})
    return path


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(options, began: float, manifest: dict, runs: dict) -> str:
    float_top1 = runs["ptq"]["top1"]["source"]
    d = float_top1 - runs["ptq"]["top1"]["tflite-int8"]
    lines = [f"# Issue #14: QAT, distillation and AdaRound on the depthwise reference (per-tensor weights)\n",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- machine: {describe()}",
             f"- command: `python -m bench.qat_dwnet --models {options.models} --out {options.out} "
             f"--threads {options.threads} --runs {options.runs}` (part of `make bench`); "
             f"{time.perf_counter() - began:.0f} s",
             f"- model: {options.models}/dwnet.pt2, built at seed {manifest.get('seed')} (largest BN-folded "
             f"depthwise spread {manifest.get('depthwise_spread', float('nan')):.1f}; seeds tried: "
             + ", ".join(f"{t['seed']} ({t['depthwise_spread']:.1f})" for t in manifest.get("seeds_tried", []))
             + "), float top-1 on its evaluation set (359 samples, one sample 0.28 points)\n",
             __doc__.split("\n\n", 1)[1].strip() + "\n",
             "| run | " + " | ".join(("source",) + TARGETS) + " | wall s |",
             "|---|" + "---:|" * (len(TARGETS) + 2)]
    for name, facts in runs.items():
        cells = [f"{facts['top1'].get(t):.2f}" if facts["top1"].get(t) is not None else "-"
                 for t in ("source",) + TARGETS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {facts['wall_s']:.0f} |")
    lines.append("")
    in_float = [f"{name} {target}: {ops}" for name, facts in runs.items() for target, ops in facts["in_float"].items()]
    lines += ["- ops the int8 artifacts run in float: " + ("; ".join(in_float) if in_float else "none"), ""]
    qat, distilled, rounded = runs["qat"]["top1"], runs["distilled"]["top1"], runs["adaround"]["top1"]
    qat_gaps = {t: float_top1 - qat[t] for t in TARGETS}
    distill_gaps = {t: qat[t] - distilled[t] for t in TARGETS}
    rounded_drop = float_top1 - rounded["tflite-int8"]
    lines += [
        "## Acceptance\n",
        f"- d (PTQ per-tensor, tflite-int8): {float_top1:.2f} - {runs['ptq']['top1']['tflite-int8']:.2f} = "
        f"{d:.2f} points (expected >= 3: {verdict(d >= 3)})",
        "- QAT with labels within 0.5 of float (float - QAT): "
        + ", ".join(f"{t} {g:+.2f}" for t, g in qat_gaps.items()) + f": {verdict(all(g <= WITHIN for g in qat_gaps.values()))}",
        "- distilled within 0.5 of QAT with labels (QAT - distilled): "
        + ", ".join(f"{t} {g:+.2f}" for t, g in distill_gaps.items()) + f": {verdict(all(abs(g) <= WITHIN for g in distill_gaps.values()))}",
        f"- AdaRound halves d: tflite-int8 drop {rounded_drop:.2f} vs d / 2 = {d / 2:.2f}: "
        f"{verdict(rounded_drop <= d / 2 and d > 0)}",
        "", "## QAT by epoch\n", *training_lines(runs), "", "## Commands\n"]
    lines += [f"- {name}: `{facts['command']}` (exit {facts['exit']}"
              + "".join(f"; {t} {status}" for t, status in facts["not_ok"].items()) + ")"
              for name, facts in runs.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--out", default="bench/QAT_DWNET.md")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (latency is not the point here)")
    options = parser.parse_args()
    from qconvert.fileio import atomic_path

    began = time.perf_counter()
    models = Path(options.models)
    manifest = json.loads((models / "manifest.json").read_text())["models"]["dwnet"]
    WORK.mkdir(parents=True, exist_ok=True)
    train = str(models / "dwnet_train.npz")
    runs = {"ptq": run(options, "ptq", []),
            "qat": run(options, "qat", ["--qat", "--train", train, "--epochs", "3"]),
            "distilled": run(options, "distilled",
                             ["--qat", "--train", str(unlabelled_copy(models)), "--epochs", "3"]),
            "adaround": run(options, "adaround", ["--adaround"]),
            "weight-scales": run(options, "weight-scales", ["--search-weight-scales"])}
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(render(options, began, manifest, runs))
    print(f"wrote {options.out}", flush=True)


if __name__ == "__main__":
    main()

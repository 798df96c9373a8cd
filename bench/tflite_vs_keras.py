"""Part of `make bench`: tflite-fp32/fp16 emitted from the IR next to TFLiteConverter.from_keras_model
on the same Keras UNet with the same converter settings, measured alternately in child processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qconvert.api import convert
from qconvert.backends.measure import RunSettings, measure_in_child
from qconvert.backends.tflite.keras_baseline import write_keras_baseline
from qconvert.report.accuracy import evaluate

OPENER = "qconvert.backends.tflite.runtime:open_session"
WORK = Path("build/bench/tflite_vs_keras")
ROUNDS = 3  # alternate the files this many times; the table keeps each file's best median


def section(models: Path, threads: int | None, runs: int) -> str:
    h5, eval_path = models / "unet.h5", models / "unet_eval.npz"
    result = convert(str(h5), ["tflite-fp32", "tflite-fp16"], out_dir=WORK, threads=threads, runs=runs,
                     eval_path=str(eval_path))
    files = {f"qconvert {t}": Path(result.row(t).path) for t in ("tflite-fp32", "tflite-fp16")}
    for mode in ("fp32", "fp16"):
        files[f"from_keras_model {mode}"] = write_keras_baseline(str(h5), WORK / f"unet.keras-{mode}.tflite", mode)

    with np.load(eval_path) as data:
        images, labels = data["input"], data["labels"]
    timing = {"input": images[:1]}
    settings = RunSettings(threads=result.threads, runs=runs)
    medians: dict[str, list[float]] = {name: [] for name in files}
    dice: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, path in files.items():
            measured = measure_in_child(OPENER, str(path), {}, {"input": images[:4]}, timing, settings,
                                        {"input": images}, 16)
            if measured.status != "ok":
                raise RuntimeError(f"{name}: {measured.error}")
            medians[name].append(measured.median_ms)
            dice[name] = evaluate("dice", measured.eval_outputs[0], labels, measured.eval_outputs[0])["dice"]

    lines = ["## TFLite from the IR vs TFLiteConverter.from_keras_model (Keras UNet, batch 1)", "",
             f"Same converter settings, {result.threads} threads, {ROUNDS} alternating rounds of {runs} runs "
             "each; best median per file. Dice on unet_eval.npz.", "",
             "| file | median ms | ours / Keras's | size MB | Dice |", "|---|---|---|---|---|"]
    for name, path in files.items():
        mode = name.split()[-1].removeprefix("tflite-")
        best = min(medians[name])
        ratio = best / min(medians[f"from_keras_model {mode}"])
        lines.append(f"| {name} | {best:.3f} | {ratio:.2f} | {path.stat().st_size / 1e6:.3f} | {dice[name]:.4f} |")
    return "\n".join(lines) + "\n"

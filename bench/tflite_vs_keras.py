"""Part of `make bench`: tflite-fp32/fp16 emitted from the IR next to TFLiteConverter.from_keras_model
on the same Keras UNet with the same converter settings, measured alternately in child processes."""

from __future__ import annotations

from pathlib import Path

from bench.alternating import ROUNDS, best_median_and_dice
from qconvert.api import convert
from qconvert.backends.tflite.keras_baseline import write_keras_baseline

WORK = Path("build/bench/tflite_vs_keras")


def section(models: Path, threads: int | None, runs: int) -> str:
    h5, eval_path = models / "unet.h5", models / "unet_eval.npz"
    result = convert(str(h5), ["tflite-fp32", "tflite-fp16"], out_dir=WORK, threads=threads, runs=runs,
                     eval_path=str(eval_path))
    files = {f"qconvert {t}": (Path(result.row(t).path), {}) for t in ("tflite-fp32", "tflite-fp16")}
    for mode in ("fp32", "fp16"):
        baseline = write_keras_baseline(str(h5), WORK / f"unet.keras-{mode}.tflite", mode)
        files[f"from_keras_model {mode}"] = (baseline, {})

    best, dice = best_median_and_dice(files, eval_path, result.threads, runs)

    lines = ["## TFLite from the IR vs TFLiteConverter.from_keras_model (Keras UNet, batch 1)", "",
             f"Same converter settings, {result.threads} threads, {ROUNDS} alternating rounds of {runs} runs "
             "each; best median per file. Dice on unet_eval.npz.", "",
             "| file | median ms | ours / Keras's | size MB | Dice |", "|---|---|---|---|---|"]
    for name, (path, _) in files.items():
        mode = name.split()[-1].removeprefix("tflite-")
        ratio = best[name] / best[f"from_keras_model {mode}"]
        lines.append(f"| {name} | {best[name]:.3f} | {ratio:.2f} | {path.stat().st_size / 1e6:.3f} | {dice[name]:.4f} |")
    return "\n".join(lines) + "\n"

"""Measure several .tflite files of the UNet side by side: their runs alternate in child processes, so
a machine that changes speed over minutes slows them all alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qconvert.backends.measure import RunSettings, measure_in_child
from qconvert.report.accuracy import evaluate

OPENER = "qconvert.backends.tflite.runtime:open_session"
ROUNDS = 3  # alternate the files this many times; each file keeps its best median


def best_median_and_dice(files: dict[str, tuple[Path, dict]], eval_path: Path, threads: int,
                         runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per file (name -> (path, facts for the LiteRT session)): best median ms at batch 1, Dice on the eval set."""
    with np.load(eval_path) as data:
        images, labels = data["input"], data["labels"]
    settings = RunSettings(threads=threads, runs=runs)
    medians: dict[str, list[float]] = {name: [] for name in files}
    dice: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, (path, facts) in files.items():
            measured = measure_in_child(OPENER, str(path), facts, {"input": images[:4]}, {"input": images[:1]},
                                        settings, {"input": images}, 16)
            if measured.status != "ok":
                raise RuntimeError(f"{name}: {measured.error}")
            medians[name].append(measured.median_ms)
            dice[name] = evaluate("dice", measured.eval_outputs[0], labels, measured.eval_outputs[0])["dice"]
    return {name: min(values) for name, values in medians.items()}, dice

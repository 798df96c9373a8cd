"""Measure several artifacts side by side: their runs alternate in child processes, so a machine that
changes speed over minutes slows them all alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qconvert.backends.measure import Measurement, RunSettings, measure_in_child
from qconvert.report.accuracy import evaluate

OPENER = "qconvert.backends.tflite.runtime:open_session"
ROUNDS = 3  # alternate the files this many times; each file keeps its best median


def alternate(files: dict[str, tuple[str, str, dict]], parity_feeds: dict[str, np.ndarray],
              timing_feeds: dict[str, np.ndarray], settings: RunSettings, rounds: int = ROUNDS,
              eval_feeds: dict[str, np.ndarray] | None = None,
              eval_batch: int = 32) -> tuple[dict[str, float], dict[str, Measurement]]:
    """Per file (name -> (opener, path, options for its session)), each in its own child process, the files
    taking turns for `rounds` rounds: the best median ms, and the last measurement (outputs, eval outputs)."""
    medians: dict[str, list[float]] = {name: [] for name in files}
    last: dict[str, Measurement] = {}
    for _ in range(rounds):
        for name, (opener, path, options) in files.items():
            measured = measure_in_child(opener, path, options, parity_feeds, timing_feeds, settings, eval_feeds,
                                        eval_batch)
            if measured.status != "ok":
                raise RuntimeError(f"{name}: {measured.error}")
            medians[name].append(measured.median_ms)
            last[name] = measured
    return {name: min(values) for name, values in medians.items()}, last


def best_median_and_dice(files: dict[str, tuple[Path, dict]], eval_path: Path, threads: int,
                         runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per file (name -> (path, facts for the LiteRT session)): best median ms at batch 1, Dice on the eval set."""
    with np.load(eval_path) as data:
        images, labels = data["input"], data["labels"]
    best, last = alternate({name: (OPENER, str(path), facts) for name, (path, facts) in files.items()},
                           {"input": images[:4]}, {"input": images[:1]}, RunSettings(threads=threads, runs=runs),
                           eval_feeds={"input": images}, eval_batch=16)
    return best, {name: evaluate("dice", m.eval_outputs[0], labels, m.eval_outputs[0])["dice"]
                  for name, m in last.items()}

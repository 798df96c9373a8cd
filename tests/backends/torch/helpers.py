"""Emit an IR to a torch program and run it next to onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qconvert.backends.targets import EmitOptions, all_targets
from qconvert.backends.torch.runtime import open_session


def sqnr(reference: np.ndarray, actual: np.ndarray) -> float:
    reference, actual = np.asarray(reference, np.float64), np.asarray(actual, np.float64)
    noise = np.sum((reference - actual) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(reference ** 2) / noise)


def emit_and_run(model, target: str, feeds: dict[str, np.ndarray], folder: Path,
                 options: EmitOptions = EmitOptions()) -> tuple[list[np.ndarray], dict]:
    path = folder / f"{target}.pt"
    facts = all_targets()[target].emit(model, path, options) or {}
    session = open_session(str(path), facts, "cpu", 1)
    return session.finish(session.run(session.prepare(feeds))), facts

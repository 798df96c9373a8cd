"""ORT format for onnxruntime's mobile and minimal builds: the .ort file and the required-operators config a
reduced build is compiled from (onnxruntime.tools.convert_onnx_models_to_ort, fixed optimizations)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from qconvert.errors import QConvertError


def convert(model: Path, folder: Path) -> tuple[Path, Path]:
    """<stem>.ort and <stem>.required_operators.config beside `model` in `folder`."""
    process = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(model),
                              "--output_dir", str(folder), "--optimization_style", "Fixed"],
                             capture_output=True, text=True, timeout=900)
    ort, config = folder / f"{model.stem}.ort", folder / f"{model.stem}.required_operators.config"
    if process.returncode != 0 or not ort.is_file() or not config.is_file():
        lines = [line for line in (process.stderr + process.stdout).splitlines() if line.strip()]
        raise QConvertError(f"package: onnxruntime could not write the ORT format of {model.name}: "
                            f"{lines[-1] if lines else f'exit {process.returncode}'}")
    return ort, config


def max_difference(ort: Path, inputs: list[np.ndarray], expected: list[np.ndarray]) -> float:
    """The .ort file's largest output difference from the .onnx's expected outputs on the golden inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(ort), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    for sample in range(len(inputs[0])):
        outputs = session.run(None, {n: x[sample] for n, x in zip(names, inputs)})
        for got, want in zip(outputs, expected):
            worst = max(worst, float(np.max(np.abs(np.asarray(got, np.float64) - want[sample]), initial=0.0)))
    return worst


def config_operators(config: Path) -> list[str]:
    """`ai.onnx;13;Conv,Relu` lines as `ai.onnx:13:Conv` entries."""
    found = []
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, ops = line.split(";")[:3]
            found += [f"{domain}:{opset}:{op}" for op in ops.split(",") if op]
    return found

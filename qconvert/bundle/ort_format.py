"""ORT format for onnxruntime's mobile and minimal builds: the .ort file and the required-operators config a
reduced build is compiled from (onnxruntime.tools.convert_onnx_models_to_ort, fixed optimizations)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from qconvert.errors import QConvertError


def _tool():
    """The converter function, imported in this process: a child spent seconds importing torch and onnx again
    (onnxruntime.tools imports both), which the packaging process has loaded already. The import calls
    logging.basicConfig (a root handler on our stderr) and puts its logger at DEBUG: both undone."""
    root = logging.getLogger()
    before = list(root.handlers)
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
    return convert_onnx_models_to_ort, OptimizationStyle


@contextlib.contextmanager
def _captured():
    """stdout and fd 2 (onnxruntime's C++ log) into one file while the tool runs; yields a reader of it."""
    with tempfile.TemporaryFile(mode="w+") as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log):
                yield lambda: (log.flush(), log.seek(0), log.read())[2]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def convert(model: Path, folder: Path) -> tuple[Path, Path]:
    """<stem>.ort and <stem>.required_operators.config beside `model` in `folder`."""
    convert_onnx_models_to_ort, style = _tool()
    ort, config = folder / f"{model.stem}.ort", folder / f"{model.stem}.required_operators.config"
    error = None
    with _captured() as read:
        try:
            convert_onnx_models_to_ort(model, output_dir=folder, optimization_styles=[style.Fixed])
        except Exception as raised:  # onnxruntime's own exceptions, on a model it cannot load or convert
            error = f"{type(raised).__name__}: {raised}"
        log = read()
    if error or not ort.is_file() or not config.is_file():
        lines = [line for line in ((error or "") + "\n" + log).splitlines() if line.strip()]
        raise QConvertError(f"package: onnxruntime could not write the ORT format of {model.name}: "
                            f"{lines[0] if error else lines[-1] if lines else 'no .ort file written'}")
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

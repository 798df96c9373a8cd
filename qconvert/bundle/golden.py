"""The golden set: a few kept parity samples in the bundled file's own form (layout, integer dtype), the file's
outputs on them in its runtime (the expected outputs verify.py reproduces), and how close those outputs are to
the source's and to the IR's.

The expected outputs are computed by verify.py's own code (golden_child), in a child process, so that what is
recorded is what verify.py will compute."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qconvert.bundle.run_dir import Run
from qconvert.errors import QConvertError

INPUTS, EXPECTED = "golden/inputs.npz", "golden/expected.npz"
FLOAT_RTOL = 1e-4  # float outputs of float files: of the output's largest magnitude (other CPUs, other kernels)


@dataclass
class Golden:
    samples: int
    expected: list[np.ndarray]  # raw outputs, samples stacked: [samples, ...file's output shape]
    tolerance: list[dict]  # per output: {"steps": n} for integer outputs, {"atol": x} for float ones
    sqnr_vs_source_db: float | None
    sqnr_vs_ir_db: float | None


def to_file_form(array: np.ndarray, port: dict) -> np.ndarray:
    """An IR-form feed as the bundled file takes it: transposed by the port's perm, quantized where the port
    is integer with a scale."""
    if port.get("perm") and array.ndim == len(port["perm"]):
        array = np.transpose(array, port["perm"])
    dtype = np.dtype(port["dtype"])
    if port.get("scale") is not None and np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = np.round(np.asarray(array, np.float32) / np.float32(port["scale"])) + port["zero_point"]
        return np.clip(array, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(array).astype(dtype)


def to_ir_form(array: np.ndarray, port: dict) -> np.ndarray:
    """A raw output back in the IR's layout and as floats (dequantized where the port has a scale)."""
    if port.get("scale") is not None:
        array = (np.asarray(array).astype(np.int32) - port["zero_point"]) * np.float32(port["scale"])
    if port.get("perm") and np.ndim(array) == len(port["perm"]):
        array = np.transpose(array, np.argsort(port["perm"]))
    return np.asarray(array, np.float32)


def write_inputs(run: Run, io: dict, folder: Path) -> int:
    """golden/inputs.npz: input_i stacked over the samples; returns the sample count."""
    (folder / "golden").mkdir(exist_ok=True)
    arrays = {f"input_{i}": np.stack([to_file_form(sample[port["name"]], port) for sample in run.kept.inputs])
              for i, port in enumerate(io["inputs"])}
    np.savez(folder / INPUTS, **arrays)
    return len(run.kept.inputs)


def run_expected(folder: Path, spec: dict) -> list[np.ndarray]:
    """verify.py's run of the golden inputs, in a child process (a runtime crash is an error line here)."""
    spec_path = folder / ".golden-spec.json"
    spec_path.write_text(json.dumps(spec))
    try:
        process = subprocess.run([sys.executable, "-m", "qconvert.bundle.golden_child", str(folder), str(spec_path),
                                  str(folder / EXPECTED)],
                                 capture_output=True, text=True, timeout=900)
    finally:
        spec_path.unlink()
    if process.returncode != 0:
        tail = [line for line in process.stderr.splitlines() if line.strip()]
        raise QConvertError(f"package: the bundled {spec['golden']['model']} did not run in {spec['target']['runtime']}:"
                            f" {tail[-1] if tail else f'exit {process.returncode}'}")
    with np.load(folder / EXPECTED) as data:
        return [data[f"output_{i}"] for i in range(len(data.files))]


def tolerances(expected: list[np.ndarray], io: dict, steps: list[float | None]) -> list[dict]:
    """Integer outputs: within 1 step. Float outputs of an int8 model: within one output step (its
    DequantizeLinear scale). Other float outputs: FLOAT_RTOL of the largest magnitude."""
    found = []
    for array, port, step in zip(expected, io["outputs"], steps):
        if np.issubdtype(array.dtype, np.integer):
            found.append({"steps": 1})
        elif step:
            found.append({"atol": float(step), "why": "one output quantization step"})
        else:
            found.append({"atol": float(FLOAT_RTOL * max(1.0, float(np.max(np.abs(array), initial=0.0)))),
                          "why": f"{FLOAT_RTOL:g} of the largest output magnitude"})
    return found


def evidence(run: Run, io: dict, expected: list[np.ndarray]) -> tuple[float | None, float | None]:
    """Worst-output SQNR of the expected outputs against the source's (kept by the conversion) and against the
    IR variant the file was emitted from (run in onnxruntime)."""
    from qconvert.report.metrics import sqnr_db

    ours = [[to_ir_form(output[s], port) for output, port in zip(expected, io["outputs"])]
            for s in range(len(run.kept.inputs))]
    joined = [np.concatenate([sample[o] for sample in ours]) for o in range(len(expected))]
    source = None
    if all(outputs is not None for outputs in run.kept.source_outputs):
        wanted = [np.concatenate([sample[o] for sample in run.kept.source_outputs]) for o in range(len(expected))]
        source = min(sqnr_db(w, a) for w, a in zip(wanted, joined))
    return source, _sqnr_vs_ir(run, joined)


def _sqnr_vs_ir(run: Run, joined: list[np.ndarray]) -> float | None:
    """The IR in onnxruntime, in the onnx-qdq artifact's form where it is quantized (quant.evaluate)."""
    from qconvert.ir import load_ir
    from qconvert.quant.evaluate import run_outputs
    from qconvert.report.metrics import sqnr_db

    model = load_ir(run.kept.ir_path(run.target.consumes))
    per_sample = [run_outputs(model, sample, threads=1) for sample in run.kept.inputs]
    ir_outputs = [np.concatenate([np.asarray(s[o]) for s in per_sample]) for o in range(len(joined))]
    return min(sqnr_db(w, a) for w, a in zip(ir_outputs, joined))


def output_steps(run: Run) -> list[float | None]:
    """Per IR output, the scale of the DequantizeLinear that produces it (an int8 IR's output step), else None."""
    from qconvert.ir import load_ir

    model = load_ir(run.kept.ir_path(run.target.consumes))
    steps = []
    for value in model.graph.outputs:
        producer = value.producer()
        scale = producer.inputs[1].const_value if producer is not None and producer.op_type == "DequantizeLinear" \
            else None
        steps.append(float(np.asarray(scale.numpy()).reshape(-1)[0]) if scale is not None else None)
    return steps

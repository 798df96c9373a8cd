"""TFLite Micro extras of a TFLite bundle (--micro): the model as a 16-byte aligned C array, the op resolver the
model needs (MicroMutableOpResolver Add* calls), and the tensor arena measured by running the model in the
tflite-micro Python interpreter, whose outputs are also compared with LiteRT's (a parity row in steps)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qconvert.bundle.golden import INPUTS

PROBE_ARENA = 256 << 20  # the first run's arena: room for any model we bundle; the used part is measured
PACKAGE = "tflite_micro"


@dataclass
class MicroRun:
    """The TFLM run of the golden set, against LiteRT's outputs on it."""

    arena_bytes: int  # the RecordingMicroAllocator's total, confirmed by a second run in exactly that arena
    max_steps: int | None  # largest difference from LiteRT in output quantization steps (integer outputs)
    max_abs_difference: float  # in the outputs' own units (steps for integer outputs)
    differing_pct: float  # share of output elements that differ at all
    elements: int
    version: str

    def to_dict(self) -> dict:
        return asdict(self)


def available() -> str | None:
    """None where tflite-micro is installed, else why not."""
    if importlib.util.find_spec(PACKAGE) is None:
        return "tflite-micro is not installed (pip install --pre tflite-micro, see requirements.txt)"
    return None


def model_ops(path: Path) -> list[str]:
    """The builtin operators the .tflite uses, as schema names (CONV_2D...), in first-use order."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    used = [codes[op.opcodeIndex] for subgraph in model.subgraphs for op in subgraph.operators]
    return [names[code] for code in dict.fromkeys(used)]


def resolver_call(op: str) -> str:
    """CONV_2D -> AddConv2D, RESIZE_NEAREST_NEIGHBOR -> AddResizeNearestNeighbor (TFLM's naming)."""
    return "Add" + "".join(part if any(c.isdigit() for c in part) else part.capitalize() for part in op.split("_"))


def identifier(stem: str) -> str:
    return re.sub(r"\W", "_", stem).strip("_") or "model"


def write_sources(model: Path, folder: Path, ops: list[str], arena: int | None) -> list[Path]:
    """<stem>_model_data.h/.cc (the model bytes, alignas(16)) and <stem>_op_resolver.h."""
    name = identifier(model.stem)
    data = model.read_bytes()
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 12]) for i in range(0, len(data), 12)]
    arena_line = (f"// Measured in the tflite-micro Python interpreter (golden inputs): the tensor arena it used.\n"
                  f"constexpr size_t k_{name}_arena_size = {arena};\n" if arena else "")
    header = (f"// {model.name} for TensorFlow Lite Micro, written by qconvert package --micro.\n#pragma once\n"
              f"#include <cstddef>\n\nextern const unsigned char g_{name}_model[];\n"
              f"extern const unsigned int g_{name}_model_len;\n{arena_line}")
    source = (f'#include "{name}_model_data.h"\n\n// 16-byte aligned: TFLM reads tensors in place.\n'
              f"alignas(16) const unsigned char g_{name}_model[] = {{\n    " + ",\n    ".join(rows) +
              f"\n}};\nconst unsigned int g_{name}_model_len = {len(data)};\n")
    calls = "".join(f"  TF_LITE_ENSURE_STATUS(resolver.{resolver_call(op)}());\n" for op in ops)
    resolver = (f"// The ops {model.name} uses ({len(ops)}), for a MicroMutableOpResolver.\n#pragma once\n"
                f'#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
                f"using {name}_op_resolver = tflite::MicroMutableOpResolver<{len(ops)}>;\n\n"
                f"inline TfLiteStatus register_{name}_ops({name}_op_resolver& resolver) {{\n{calls}"
                f"  return kTfLiteOk;\n}}\n")
    paths = [folder / f"{name}_model_data.h", folder / f"{name}_model_data.cc", folder / f"{name}_op_resolver.h"]
    for path, text in zip(paths, (header, source, resolver)):
        path.write_text(text)
    return paths


def _run(model: Path, bundle: Path, out: Path, arena: int, outputs: int) -> tuple[int, str]:
    process = subprocess.run([sys.executable, "-m", "qconvert.bundle.micro_child", str(model), str(bundle / INPUTS),
                              str(out), str(arena), str(outputs)], capture_output=True, text=True, timeout=900)
    return process.returncode, process.stderr


def measure(model: Path, bundle: Path, expected: list[np.ndarray], work: Path) -> MicroRun:
    """Runs the golden set in TFLM twice: in a large arena (the allocator reports what it used), then in exactly
    that arena (it must still run and give the same outputs)."""
    from qconvert.errors import QConvertError

    out = work / "micro-outputs.npz"
    code, log = _run(model, bundle, out, PROBE_ARENA, len(expected))
    found = re.search(r"Arena allocation total (\d+) bytes", log)
    if code != 0 or not found:
        raise QConvertError(f"package --micro: TFLite Micro could not run {model.name}: {_last_line(log, code)}")
    arena = int(found.group(1))
    first = _load(out)
    code, log = _run(model, bundle, out, arena, len(expected))
    if code != 0 or any(not np.array_equal(a, b) for a, b in zip(first, _load(out))):
        raise QConvertError(f"package --micro: {model.name} did not run in its measured arena of {arena} bytes: "
                            f"{_last_line(log, code)}")
    worst, differing, elements = 0.0, 0, 0
    integer = all(np.issubdtype(want.dtype, np.integer) for want in expected)
    for want, got in zip(expected, first):
        diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        differing += int(np.count_nonzero(diff))
        elements += diff.size
    from importlib.metadata import version

    return MicroRun(arena, int(worst) if integer else None, worst, 100.0 * differing / max(elements, 1), elements, version("tflite-micro"))


def _load(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"output_{i}"] for i in range(len(data.files))]


def _last_line(log: str, code: int) -> str:
    lines = [line for line in log.splitlines() if line.strip() and "RecordingMicroAllocator" not in line]
    return lines[-1] if lines else f"exit {code}"

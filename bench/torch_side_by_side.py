"""Part of `make bench`: the PyTorch int8 artifacts against the eager source and the torch-fp32 artifact.

VGG (torch-int8, batch 32) and the BERT-style encoder (torch-dynamic, batch 1): each file runs in its own
child process, as every qconvert row does, and the files take turns for several rounds; each keeps its
best median, so a machine that changes speed over minutes slows them all alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qconvert.api import convert
from bench.alternating import alternate
from qconvert.backends.measure import RunSettings
from qconvert.converters import load_source
from qconvert.converters.input_spec import parse_input_shapes

TORCH_OPENER = "qconvert.backends.torch.runtime:open_session"
WORK = Path("build/bench/torch_side_by_side")
ROUNDS = 5


@dataclass
class Case:
    name: str
    model: str  # may hold {models}
    int8_target: str
    batch: int
    options: dict = field(default_factory=dict)


CASES = [
    Case("vgg", "models/vgg_torch.py:build", "torch-int8", 32,
         {"weights": "{models}/vgg_weights.pt", "trust_code": True, "input_shapes": ["1,3,32,32"],
          "calib": "{models}/vgg_calib.npz"}),
    Case("bert", "{models}/bert.pt2", "torch-dynamic", 1),
]


def _timing_feeds(models: Path, name: str, batch: int) -> dict[str, np.ndarray]:
    with np.load(models / f"{name}_eval.npz") as data:
        return {k: data[k][:batch] for k in data.files if k != "labels"}


def section(models: Path, threads: int | None, runs: int) -> str:
    from qconvert.backends.hardware import physical_cores

    threads = threads or physical_cores()
    lines = ["## PyTorch artifacts against the eager source (bench/torch_side_by_side.py)\n",
             f"{threads} threads; {ROUNDS} alternated rounds of child processes, best median each.\n",
             "| model | file | batch | median ms | × eager source | × torch-fp32 |", "|---|---|---|---|---|---|"]
    for case in CASES:
        options = {k: (v.replace("{models}", str(models)) if isinstance(v, str) else v)
                   for k, v in case.options.items()}
        model = case.model.replace("{models}", str(models))
        result = convert(model, ["torch-fp32", case.int8_target], out_dir=WORK / case.name, batch=case.batch,
                         threads=threads, runs=5, **options)
        source = load_source(model, input_specs=parse_input_shapes(options.get("input_shapes", [])),
                             weights=options.get("weights"), trust_code=options.get("trust_code", False))
        files = {
            "eager source": (source.reference_runner, source.path, source.load_options),
            "torch-fp32": (TORCH_OPENER, result.row("torch-fp32").path, {}),
            case.int8_target: (TORCH_OPENER, result.row(case.int8_target).path, {"engine": "x86"}),
        }
        feeds = _timing_feeds(models, case.name, case.batch)
        medians, _ = alternate(files, feeds, feeds, RunSettings(threads=threads, runs=runs), ROUNDS)
        for name, ms in medians.items():
            lines.append(f"| {case.name} | {name} | {case.batch} | {ms:.3f} | {ms / medians['eager source']:.2f} | "
                         f"{ms / medians['torch-fp32']:.2f} |")
    return "\n".join(lines) + "\n"

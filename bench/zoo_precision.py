"""The zoo's torch models in their own framework's half precisions, beside qconvert's reduced-precision targets.

    python -m bench.zoo_precision --out bench/ZOO_PRECISION.md [--only NAME ...]

A target's SQNR below its floor is either the conversion's fault or the model's: random-weight networks
amplify rounding far more than trained ones. This bench separates the two. Each torch-family zoo model is
rebuilt by its builder (the weights and BatchNorm statistics it was saved with), run eagerly in float32
(the zoo's reference) and cast whole to float16 and bfloat16 (`module.half()`, `module.to(torch.bfloat16)`),
on the samples the zoo feeds it. Beside those: qconvert's cells from build/zoo/results (`make zoo` first).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from bench.machine import describe
from bench.zoo import PARITY_SAMPLES, ZOO
from models.zoo.registry import select

FAMILIES = ("torchvision", "hf", "detector")
PRECISIONS = {"fp16": "float16", "bf16": "bfloat16"}
OURS = ("onnx-fp16", "tflite-fp16", "torch-fp16", "torch-bf16")


def sqnr_db(reference: list[np.ndarray], actual: list[np.ndarray]) -> float:
    signal = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in reference)
    noise = sum(float(np.sum((r.astype(np.float64) - a.astype(np.float64)) ** 2)) for r, a in zip(reference, actual))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def _outputs(module, tensors) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        result = module(*tensors)
    result = result if isinstance(result, (tuple, list)) else (result,)
    return [r.float().numpy() for r in result]


def eager_precision(model) -> dict[str, float]:
    import importlib

    import torch

    module = importlib.import_module(model.builder.split(":")[0]).prepared(model).eval()
    arrays = model.sample_inputs(PARITY_SAMPLES, seed=7)
    reference = _outputs(module.float(), [torch.from_numpy(a) for a in arrays])
    result = {}
    for name, dtype_name in PRECISIONS.items():
        dtype = getattr(torch, dtype_name)
        tensors = [torch.from_numpy(a).to(dtype) if a.dtype.kind == "f" else torch.from_numpy(a) for a in arrays]
        result[name] = sqnr_db(reference, _outputs(module.to(dtype), tensors))
        module.float()
    return result


def ours(name: str) -> dict[str, float | None]:
    path = ZOO / "results" / f"{name}.json"
    rows = json.loads(path.read_text()).get("rows", {}) if path.exists() else {}
    values = {}
    for target in OURS:
        sqnr = rows.get(target, {}).get("sqnr_db")
        values[target] = None if sqnr is None else float("inf") if sqnr == "inf" else float(sqnr)
    return values


def _cell(value: float | None) -> str:
    return "–" if value is None else "exact" if value == float("inf") else f"{value:.1f}"


def render(rows: list[dict]) -> str:
    lines = ["# Zoo models in their own framework's half precisions", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}", f"- machine: {describe()}",
             "- command: `python -m bench.zoo_precision --out bench/ZOO_PRECISION.md`",
             f"- SQNR in dB against the same model in eager float32 on the zoo's {PARITY_SAMPLES} samples; "
             "eager columns: the whole torch module cast (`.half()`, `.to(torch.bfloat16)`); qconvert columns: "
             "bench/ZOO.md's cells (floors fp16 30 dB, bf16 20 dB)", "",
             "| model | eager fp16 | onnx-fp16 | tflite-fp16 | torch-fp16 | eager bf16 | torch-bf16 |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | {row['error']} | | | | | |")
            continue
        o = row["ours"]
        lines.append(f"| {row['name']} | {_cell(row['eager']['fp16'])} | {_cell(o['onnx-fp16'])} | "
                     f"{_cell(o['tflite-fp16'])} | {_cell(o['torch-fp16'])} | {_cell(row['eager']['bf16'])} | "
                     f"{_cell(o['torch-bf16'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/ZOO_PRECISION.md")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)
    rows = []
    saved_as_pt2 = {m.arch for m in select(None, list(FAMILIES)) if m.format == "pt2"}
    for model in select(args.only, list(FAMILIES)):
        if model.format != "pt2" and model.arch in saved_as_pt2:
            continue  # the same weights as its .pt2 entry
        try:
            row = {"name": model.name, "eager": eager_precision(model), "ours": ours(model.name)}
        except Exception as error:  # one model's failure is its row, not the bench's end
            row = {"name": model.name, "error": f"{type(error).__name__}: {error}".splitlines()[0][:120]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).write_text(render(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

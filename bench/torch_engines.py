"""torch-int8 on each of torch's int8 engines, written to bench/TORCH_ENGINES.md: the evidence for the default.

    python -m bench.torch_engines [--models build/models] [--threads 1] [--rounds 40]

For the digits MobileNet (depthwise, SE, HardSwish) and the residual reference: the same QDQ IR emitted as
torch-int8 packed for x86 (fbgemm), onednn and qnnpack, and as onnx-qdq. Accuracy: top-1 on the evaluation
set and SQNR against onnx-qdq (the IR's integers, run in onnxruntime) on 256 evaluation images. Latency at
batch 32: the three TorchScript files loaded in one process, their runs alternated one by one (this
machine drifts in speed by several times within minutes; only runs side by side give ratios that hold).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np

ENGINES = ("x86", "onednn", "qnnpack")
MODELS = ("mobilenet", "resnet")
WORK = Path("build/bench/torch_engines")


def convert_all(models: Path, name: str) -> dict[str, Path]:
    from qconvert.api import convert

    files = {}
    for engine in ENGINES:
        out = WORK / f"{name}_{engine}"
        targets = ["torch-int8", "onnx-qdq"] if engine == ENGINES[0] else ["torch-int8"]
        convert(str(models / f"{name}.pt2"), targets, out_dir=out, calib=str(models / f"{name}_calib.npz"),
                engine=engine, batch=32, runs=2, warmup=1, parity_samples=8)
        files[engine] = out / f"{name}.int8.pt"
    files["onnx-qdq"] = WORK / f"{name}_{ENGINES[0]}" / f"{name}.qdq.onnx"
    return files


def measure(files: dict[str, Path], x: np.ndarray, labels: np.ndarray, threads: int, rounds: int) -> list[dict]:
    import onnxruntime as ort
    import torch

    from qconvert.report.metrics import sqnr_db

    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(files["onnx-qdq"]), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    reference = np.concatenate([session.run(None, {name: x[i:i + 32]})[0] for i in range(0, len(x), 32)])
    modules = {}
    for engine in ENGINES:
        torch.backends.quantized.engine = engine
        modules[engine] = torch.jit.load(str(files[engine]))
    rows, batch = [], torch.from_numpy(x[:32])
    times = {engine: [] for engine in ENGINES}
    with torch.no_grad():
        for engine, module in modules.items():
            torch.backends.quantized.engine = engine
            out = np.concatenate([module(torch.from_numpy(x[i:i + 32])).numpy() for i in range(0, len(x), 32)])
            rows.append({"engine": engine, "top1": float((out.argmax(1) == labels).mean() * 100),
                         "sqnr": sqnr_db(reference, out)})
            for _ in range(3):
                module(batch)
        for _ in range(rounds):
            for engine, module in modules.items():
                torch.backends.quantized.engine = engine
                began = time.perf_counter()
                module(batch)
                times[engine].append(time.perf_counter() - began)
    for row in rows:
        row["ms"] = float(np.median(times[row["engine"]]) * 1000)
    return rows


def main(argv=None) -> None:
    from bench.machine import describe

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--out", default="bench/TORCH_ENGINES.md")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    models = Path(args.models)
    lines = ["# torch-int8 on each int8 engine", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- machine: {describe()}; load average at start: {open('/proc/loadavg').read().split()[0]}",
             f"- command: `python -m bench.torch_engines --models {args.models} --threads {args.threads} "
             f"--rounds {args.rounds}`", "", (__doc__ or "").split("\n\n", 1)[1].strip(), ""]
    for name in MODELS:
        files = convert_all(models, name)
        with np.load(models / f"{name}_eval.npz") as data:
            key = next(k for k in data.files if k != "labels")
            x, labels = data[key][:256], data["labels"][:256]
        rows = measure(files, x, labels, args.threads, args.rounds)
        fastest = min(r["ms"] for r in rows)
        lines += [f"## {name}", "", "| engine | top-1 | SQNR dB vs onnx-qdq | median ms (batch 32) | × fastest |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['engine']} | {r['top1']:.2f} | {r['sqnr']:.1f} | {r['ms']:.2f} | {r['ms'] / fastest:.2f} |"
                  for r in rows]
        lines.append("")
    lines.append(f"({time.perf_counter() - began:.0f} s)")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""TFLite's sparse weight encoding on a pruned model: file sizes, load time and latency, dense against sparse.

    python -m bench.tflite_sparse MODEL [--sparsity 0.8] [--modes fp32,fp16] [--pairs 200] [--out DIR]

The float IR pruned globally (qconvert.passes.prune_magnitude), each mode converted twice by the emitter's
own settings (qconvert.backends.tflite.emit.configure), with and without Optimize.EXPERIMENTAL_SPARSITY.
Latency: one child process, one thread, both interpreters loaded and their invocations alternated; load
time (interpreter + allocate_tensors, where DENSIFY runs): alternated too. Medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOADS = 20


def convert_both(model_path: str, sparsity: float, modes: list[str], out: Path) -> dict[str, dict[str, str]]:
    from qconvert.backends.tflite.emit import configure, converter_for
    from qconvert.backends.tflite.program import build_program
    from qconvert.backends.tflite.signature import restore_io
    from qconvert.converters import load_source
    from qconvert.passes import cleanup
    from qconvert.passes.pipelines import prepare_for_tflite
    from qconvert.passes.prune_magnitude import prune_global
    from qconvert.quiet_imports import import_tensorflow

    import_tensorflow()
    model = cleanup(load_source(model_path).ir)
    prune_global(model, sparsity)
    program = build_program(prepare_for_tflite(model), None, "tflite-fp32")
    files = {}
    for mode in modes:
        for sparse in (False, True):
            converter = converter_for(program)
            configure(converter, mode, sparse)
            path = out / f"{mode}_{'sparse' if sparse else 'dense'}.tflite"
            path.write_bytes(restore_io(converter.convert(), program.inputs, program.outputs))
            files.setdefault(mode, {})["sparse" if sparse else "dense"] = str(path)
    return files


def child(request_path: str) -> None:
    """Load times and latencies of the request's files, alternated (run in a fresh process)."""
    from ai_edge_litert.interpreter import Interpreter

    request = json.loads(Path(request_path).read_text())
    paths, pairs = request["paths"], request["pairs"]
    loads: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(LOADS):
        for name, path in paths.items():
            began = time.perf_counter()
            Interpreter(model_path=path, num_threads=1).allocate_tensors()
            loads[name].append((time.perf_counter() - began) * 1000)
    interpreters = {}
    for name, path in paths.items():
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            rng = np.random.default_rng(0)
            interpreter.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(detail["dtype"]))
        interpreters[name] = interpreter
    times: dict[str, list[float]] = {name: [] for name in paths}
    for index in range(pairs + 5):
        order = list(interpreters.items()) if index % 2 else list(reversed(interpreters.items()))
        for name, interpreter in order:
            began = time.perf_counter()
            interpreter.invoke()
            if index >= 5:
                times[name].append((time.perf_counter() - began) * 1000)
    outputs = {name: it.get_tensor(it.get_output_details()[0]["index"]) for name, it in interpreters.items()}
    first = next(iter(outputs.values()))
    Path(request["result"]).write_text(json.dumps({
        "latency_ms": {n: float(np.median(t)) for n, t in times.items()},
        "load_ms": {n: float(np.median(t)) for n, t in loads.items()},
        "max_abs_diff": max(float(np.max(np.abs(o - first))) for o in outputs.values())}))


def main() -> None:
    from qconvert.backends.measure import thread_environment

    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--modes", default="fp32,fp16")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", default="bench-out/tflite_sparse")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = convert_both(args.model, args.sparsity, args.modes.split(","), out)
    results = {}
    for mode, paths in files.items():
        request = {"paths": paths, "pairs": args.pairs, "result": str(out / f"{mode}_result.json")}
        (out / f"{mode}_request.json").write_text(json.dumps(request))
        subprocess.run([sys.executable, "-m", "bench.tflite_sparse", "--child", str(out / f"{mode}_request.json")],
                       env=thread_environment(1), check=True)
        measured = json.loads((out / f"{mode}_result.json").read_text())
        sizes = {kind: Path(path).stat().st_size for kind, path in paths.items()}
        results[mode] = {"bytes": sizes, **measured}
        print(f"{mode}: dense {sizes['dense']:,} B, sparse {sizes['sparse']:,} B "
              f"({sizes['sparse'] / sizes['dense']:.3f}x); latency ms dense {measured['latency_ms']['dense']:.3f} "
              f"sparse {measured['latency_ms']['sparse']:.3f} "
              f"({measured['latency_ms']['sparse'] / measured['latency_ms']['dense']:.3f}x); load ms dense "
              f"{measured['load_ms']['dense']:.1f} sparse {measured['load_ms']['sparse']:.1f}; "
              f"max |diff| {measured['max_abs_diff']:.2e}")
    (out / "result.json").write_text(json.dumps({"model": args.model, "sparsity": args.sparsity, **results}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()

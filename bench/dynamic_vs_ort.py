"""Dynamic int8 on the reference BERT with pretrained-like outlier channels, written to bench/DYNAMIC.md.

    python -m bench.dynamic_vs_ort [--models build/models] [--threads 2] [--pairs 300]

The encoder (models/bert_torch.py) carries LayerNorm gains/biases 20-100x the median in a few dims. Side by
side on the same float IR: qconvert's onnx-dynamic and torch-dynamic (per-channel weights, LayerNorm
outliers smoothed into the weights: qconvert/passes/smooth_quant.py), the same two emitters without the
smoothing, and onnxruntime's quantize_dynamic per tensor, per channel, and per channel with the MatMuls
that read the outlier LayerNorms kept float (the other remedy the issue names). Accuracy: cosine to the
float model over the evaluation set, of the hidden states (the model's output) and of their mean over the
tokens (the pooled embedding the training head reads), and SQNR. Latency at batch 1 with the runs of every
file of one runtime alternated one by one in a fresh process (bench/paired_timing.py; torch files alike
here), ratios to that runtime's float artifact.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx_ir as ir

WORK = Path("build/bench/dynamic")
WARMUP = 5


def cosines(reference: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Mean per-sample cosine of the flattened hidden states and of the token-mean (pooled) embedding."""
    def mean_cos(r, a):
        return float(np.mean(np.sum(r * a, 1) / np.linalg.norm(r, axis=1) / np.linalg.norm(a, axis=1)))

    return (mean_cos(reference.reshape(len(reference), -1), actual.reshape(len(actual), -1)),
            mean_cos(reference.mean(1), actual.mean(1)))


def ort_dynamic(float_path: Path, out: Path, per_channel: bool, exclude: list[str] = ()) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(float_path, out, per_channel=per_channel, weight_type=QuantType.QInt8,
                     nodes_to_exclude=list(exclude), extra_options={"MatMulConstBOnly": True})
    return out


def layernorm_fed_matmuls(graph: ir.Model) -> list[str]:
    """MatMuls that read a LayerNorm output directly (the ones its outlier channels hit)."""
    return [user.name for node in graph.graph if node.op_type == "LayerNormalization"
            for user, _ in node.outputs[0].uses() if user.op_type == "MatMul"]


def emit_files(graph: ir.Model, work: Path) -> dict[str, tuple[str, Path, dict]]:
    """name -> (runtime, path, facts) for every file compared."""
    import qconvert.passes.smooth_quant as smooth_quant
    from qconvert.backends.targets import EmitOptions, all_targets

    targets, files = all_targets(), {}
    for name in ("onnx-fp32", "onnx-dynamic", "torch-fp32", "torch-dynamic"):
        target = targets[name]
        path = work / f"bert_{name}{target.suffix}"
        files[name] = (target.runtime, path, target.emit(graph, path, EmitOptions()) or {})
    prepared = smooth_quant.DYNAMIC_PREPARATION
    smooth_quant.DYNAMIC_PREPARATION = []  # the same emitters, no smoothing
    try:
        for name in ("onnx-dynamic", "torch-dynamic"):
            target = targets[name]
            path = work / f"bert_{name}_unsmoothed{target.suffix}"
            files[f"{name}, no smoothing"] = (target.runtime, path, target.emit(graph, path, EmitOptions()) or {})
    finally:
        smooth_quant.DYNAMIC_PREPARATION = prepared
    float_path = files["onnx-fp32"][1]
    files["ORT quantize_dynamic per tensor"] = ("onnxruntime", ort_dynamic(float_path, work / "ort_tensor.onnx",
                                                                           False), {})
    files["ORT quantize_dynamic per channel"] = ("onnxruntime", ort_dynamic(float_path, work / "ort_channel.onnx",
                                                                            True), {})
    kept = layernorm_fed_matmuls(graph)
    files[f"ORT per channel, {len(kept)} LayerNorm-fed MatMuls float"] = (
        "onnxruntime", ort_dynamic(float_path, work / "ort_channel_keep.onnx", True, kept), {})
    return files


def open_file(runtime: str, path: Path, facts: dict, threads: int):
    if runtime == "onnxruntime":
        from qconvert.backends.onnx.runtime import OrtSession

        return OrtSession(str(path), "cpu", threads, spin=False)
    from qconvert.backends.torch.runtime import TorchSession

    return TorchSession(str(path), facts, "cpu", threads)


def paired(files: dict[str, tuple[str, Path, dict]], feeds: dict[str, np.ndarray], threads: int,
           pairs: int) -> dict[str, float]:
    """Median ms per file, the files' runs alternated one by one in a fresh child process."""
    from qconvert.backends.measure import thread_environment

    with tempfile.TemporaryDirectory(prefix="qconvert-dynamic-") as work:
        np.savez(Path(work) / "feeds.npz", **feeds)
        request = {"files": {n: [r, str(p), f] for n, (r, p, f) in files.items()}, "threads": threads,
                   "pairs": pairs, "feeds": str(Path(work) / "feeds.npz"), "result": str(Path(work) / "out.json")}
        (Path(work) / "request.json").write_text(json.dumps(request))
        subprocess.run([sys.executable, "-m", "bench.dynamic_vs_ort", "--paired", str(Path(work) / "request.json")],
                       env=thread_environment(threads), check=True)
        return json.loads((Path(work) / "out.json").read_text())


def paired_child(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    with np.load(request["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    sessions = {n: open_file(r, Path(p), f, request["threads"]) for n, (r, p, f) in request["files"].items()}
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for index in range(request["pairs"] + WARMUP):
        for name, session in sessions.items():
            began = time.perf_counter()
            session.run(feeds)
            if index >= WARMUP:
                times[name].append((time.perf_counter() - began) * 1000)
    Path(request["result"]).write_text(json.dumps({n: float(np.median(t)) for n, t in times.items()}))


def run_all(files, feeds, threads) -> dict[str, np.ndarray]:
    outputs = {}
    for name, (runtime, path, facts) in files.items():
        session = open_file(runtime, path, facts, threads)
        outputs[name] = np.concatenate([session.run({k: v[i:i + 32] for k, v in feeds.items()})[0]
                                        for i in range(0, len(next(iter(feeds.values()))), 32)])
    return outputs


def main() -> None:
    from bench.machine import describe
    from qconvert.converters import load_source
    from qconvert.fileio import atomic_path
    from qconvert.passes import cleanup
    from qconvert.report.metrics import sqnr_db

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--out", default="bench/DYNAMIC.md")
    parser.add_argument("--paired", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.paired:
        return paired_child(options.paired)
    began = time.perf_counter()
    models = Path(options.models)
    WORK.mkdir(parents=True, exist_ok=True)
    graph = cleanup(load_source(str(models / "bert.pt2")).ir)
    gains = [float(np.abs(n.inputs[1].const_value.numpy()).max() / np.median(np.abs(n.inputs[1].const_value.numpy())))
             for n in graph.graph if n.op_type == "LayerNormalization"]
    files = emit_files(graph, WORK)
    with np.load(models / "bert_eval.npz") as data:
        eval_feeds = {"input_ids": data["input_ids"]}
    outputs = run_all(files, eval_feeds, options.threads)
    reference = outputs["onnx-fp32"]
    timing = {"input_ids": eval_feeds["input_ids"][:1]}
    ms = {}
    for runtime in ("onnxruntime", "torch"):
        ms.update(paired({n: f for n, f in files.items() if f[0] == runtime}, timing, options.threads, options.pairs))
    float_of = {"onnxruntime": ms["onnx-fp32"], "torch": ms["torch-fp32"]}
    torch_reference = outputs["torch-fp32"]

    lines = ["| file | runtime | cosine (hidden states) | cosine (pooled) | SQNR dB | median ms | × same runtime's float |",
             "|---|---|---|---|---|---|---|"]
    for name, (runtime, path, facts) in files.items():
        hidden, pooled = cosines(reference, outputs[name])
        lines.append(f"| {name} | {runtime} | {hidden:.5f} | {pooled:.5f} | {sqnr_db(reference, outputs[name]):.1f} | "
                     f"{ms[name]:.2f} | {ms[name] / float_of[runtime]:.2f}× |")
    smoothed = files["onnx-dynamic"][2]["quantization"]["smoothed_layernorms"]
    header = (
        "# Dynamic int8 on the BERT with outlier channels\n\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n- machine: {describe()}\n"
        f"- command: `python -m bench.dynamic_vs_ort --models {options.models} --threads {options.threads} "
        f"--pairs {options.pairs}` ({time.perf_counter() - began:.0f} s); the model from `make models` "
        f"(`python -m models.build --out {options.models} --only bert`)\n"
        f"- the same artifacts from the CLI: `qconvert {models}/bert.pt2 --to onnx-fp32,onnx-dynamic,torch-fp32,"
        f"torch-dynamic --eval {models}/bert_eval.npz --metric cosine`\n\n")
    body = (__doc__.split("\n\n", 1)[1].split("\n\n", 1)[1] + "\n"
            f"LayerNorm max/median |gain| in the float IR: {', '.join(f'{g:.1f}' for g in gains)}; smoothed "
            f"({len(smoothed)}), max/median channel range before: "
            f"{', '.join(f'{v:.1f}' for v in smoothed.values())}. {len(next(iter(eval_feeds.values())))} evaluation "
            f"sequences of 128 tokens; {options.threads} threads; {options.pairs} alternated runs per file; "
            f"torch-fp32 against onnx-fp32: SQNR {sqnr_db(reference, torch_reference):.1f} dB.\n\n")
    with atomic_path(Path(options.out)) as tmp:
        tmp.write_text(header + body + "\n".join(lines) + "\n")
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()

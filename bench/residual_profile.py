"""qconvert's onnx-qdq of a residual net next to onnxruntime.quantization's, both profiled in onnxruntime.

    python -m bench.residual_profile [--models build/models] [--name resnet] [--batch 32] [--threads 2]

For the residual reference (models/resnet_torch.py): onnx-fp32, qconvert's onnx-qdq and
`onnxruntime.quantization.quantize_static` (QDQ, per-channel int8 weights, after quant_pre_process, the
same 256 calibration samples: bench.quant_vs_ort.ort_quantize_static) with int8 activations (its
default) and with uint8 activations. Prints
  - top-1 on the evaluation set and latency at the batch and thread count given, measured two ways in
    a fresh process: bench/paired_timing.py (one run each, alternated in a fixed order: the bench's
    method) and "warm" alternation (each file runs twice in a row and only its second run is timed).
    On this shared machine, under load, the run right after the float file's was at times 1.3-1.7x
    slower than the same file's next run (the same file twice in a row, fixed order; not in every
    session), which charges the file in the second slot; the warm figures do not have that slot;
  - per file, onnxruntime's optimized graph (SessionOptions.optimized_model_filepath, ORT_ENABLE_ALL):
    its node types, and the node patterns around each residual Add;
  - per file, the kernel time per op type from onnxruntime's profiler (SessionOptions.enable_profiling):
    per node the median over the profiled runs, the least of --rounds rounds (fresh process per file
    and round, files alternated), summed per op type.
The files and their optimized graphs (*.ort_optimized.onnx) are kept under build/bench/residual_profile/NAME.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.paired_timing import paired_ms

WORK = Path("build/bench/residual_profile")
CALIB_SAMPLES = 256
WARMUP = 5


def build_files(models: Path, name: str, batch: int, threads: int) -> dict[str, str]:
    """onnx-fp32 and onnx-qdq from qconvert, and onnxruntime's quantize_static of that onnx-fp32."""
    from bench.quant_vs_ort import ort_quantize_static
    from qconvert.api import convert

    out = WORK / name
    result = convert(str(models / f"{name}.pt2"), ["onnx-fp32", "onnx-qdq"], out_dir=out,
                     calib=str(models / f"{name}_calib.npz"), calib_samples=CALIB_SAMPLES, batch=batch,
                     threads=threads, runs=3, warmup=1)
    fp32, ours = result.row("onnx-fp32"), result.row("onnx-qdq")
    for row in (fp32, ours):
        if row.status != "ok":
            raise SystemExit(f"{row.target}: {row.status}: {row.error}")
    calib = str(models / f"{name}_calib.npz")
    ort_s8 = ort_quantize_static(fp32.path, calib, out / f"{name}.ort_qdq.onnx")
    ort_u8 = ort_quantize_static(fp32.path, calib, out / f"{name}.ort_qdq_u8.onnx", activations="uint8")
    return {"onnx-fp32": fp32.path, "qconvert onnx-qdq": ours.path, "ORT quantize_static": str(ort_s8),
            "ORT quantize_static u8": str(ort_u8)}


def _session(path: str, threads: int, profile_prefix: str | None = None, optimized: str | None = None,
             spin: bool = True):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:  # sessions that alternate must not spin-wait on each other's cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized:
        options.optimized_model_filepath = optimized
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def top1(path: str, eval_path: str, threads: int) -> float:
    session = _session(path, threads)
    name = session.get_inputs()[0].name
    with np.load(eval_path) as data:
        x, labels = data[name], data["labels"]
    logits = np.concatenate([session.run(None, {name: x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    return float((logits.argmax(axis=1) == labels).mean())


def profile_child(request: dict) -> dict:
    """Warm up, profile `runs` runs; per node its op type and median kernel µs over those runs."""
    with np.load(request["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    session = _session(request["path"], request["threads"], request["prefix"])
    for _ in range(WARMUP + request["runs"]):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(kernels) // (WARMUP + request["runs"])
    durations: dict[str, list] = {}  # node -> [op type, µs of each timed run...]
    for event in kernels[-per_run * request["runs"]:]:  # the warm-up runs are in the profile too
        node = event["name"][: -len("_kernel_time")]
        durations.setdefault(node, [event["args"]["op_name"]]).append(event["dur"])
    # The median: a shared machine's stalls land on a few runs of a few nodes.
    return {node: [d[0], float(np.median(d[1:]))] for node, d in durations.items()}


def warm_child(request: dict) -> dict:
    """Median ms per file, files alternated, each run twice in a row with only the second run timed."""
    import time

    with np.load(request["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    sessions = {label: _session(path, request["threads"], spin=False) for label, path in request["paths"].items()}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for index in range(WARMUP + request["pairs"]):
        for label, session in sessions.items():
            session.run(None, feeds)
            began = time.perf_counter()
            session.run(None, feeds)
            if index >= WARMUP:
                times[label].append((time.perf_counter() - began) * 1000)
    return {label: float(np.median(t)) for label, t in times.items()}


CHILDREN = {"profile": profile_child, "warm": warm_child}


def in_child(kind: str, request: dict, feeds: dict[str, np.ndarray], threads: int):
    """Runs CHILDREN[kind](request) in a fresh python with the thread pools sized to `threads`."""
    from qconvert.backends.measure import thread_environment

    with tempfile.TemporaryDirectory(prefix="qconvert-residual-") as work:
        np.savez(Path(work) / "feeds.npz", **feeds)
        request = {**request, "threads": threads, "feeds": str(Path(work) / "feeds.npz"),
                   "prefix": str(Path(work) / "ort"), "result": str(Path(work) / "result.json")}
        (Path(work) / "request.json").write_text(json.dumps(request))
        subprocess.run([sys.executable, "-m", "bench.residual_profile", "--child", kind, str(Path(work) / "request.json")],
                       env=thread_environment(threads), check=True)
        return json.loads((Path(work) / "result.json").read_text())


def profiles(paths: dict[str, str], feeds, threads: int, runs: int, rounds: int) -> dict[str, dict]:
    """Per file, per node: the least over `rounds` alternated rounds of the per-round median µs."""
    best: dict[str, dict] = {label: {} for label in paths}
    for _ in range(rounds):
        for label, path in paths.items():
            for node, (op, us) in in_child("profile", {"path": path, "runs": runs}, feeds, threads).items():
                previous = best[label].get(node)
                best[label][node] = [op, min(us, previous[1]) if previous else us]
    return best


def optimized_graph(path: str, threads: int, out: Path):
    """onnxruntime's graph after its optimizations (what actually runs), saved to `out`."""
    import onnx

    _session(path, threads, optimized=str(out))
    return onnx.load(str(out), load_external_data=False).graph


def op_label(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain.replace('com.microsoft', 'ms')}.{node.op_type}"


def residual_patterns(graph) -> collections.Counter:
    """Each residual add (Add, com.microsoft.QLinearAdd) as `producers -> add -> consumers`."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    patterns = collections.Counter()
    for n in graph.node:
        if n.op_type not in ("Add", "QLinearAdd"):
            continue
        data_inputs = [n.input[i] for i in ((0, 3) if n.op_type == "QLinearAdd" else (0, 1))]
        if any(i not in producer for i in data_inputs):
            continue  # a bias add onto a constant, not a residual
        ins = " + ".join(sorted(op_label(producer[i]) for i in data_inputs))
        outs = ", ".join(sorted(op_label(c) for c in consumers[n.output[0]])) or "(output)"
        patterns[f"{ins} -> {op_label(n)} -> {outs}"] += 1
    return patterns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="build/models")
    parser.add_argument("--name", default="resnet")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--profile-runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", action="store_true", help="also print the kernel time of every node")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        request = json.loads(Path(options.child[1]).read_text())
        Path(request["result"]).write_text(json.dumps(CHILDREN[options.child[0]](request)))
        return

    models = Path(options.models)
    paths = build_files(models, options.name, options.batch, options.threads)
    eval_path = str(models / f"{options.name}_eval.npz")
    with np.load(eval_path) as data:
        feeds = {"x": data["x"][: options.batch]}
    accuracy = {label: top1(path, eval_path, options.threads) for label, path in paths.items()}
    paired = paired_ms(paths, feeds, options.threads, options.pairs)
    warm = in_child("warm", {"paths": paths, "pairs": options.pairs}, feeds, options.threads)
    print(f"\n## {options.name}: batch {options.batch}, {options.threads} threads, medians of {options.pairs} "
          "alternated runs\n")
    print("| file | top-1 | paired ms (fixed order) | × fp32 | warm ms | × fp32 |\n|---|---|---|---|---|---|")
    for label in paths:
        print(f"| {label} | {accuracy[label]:.4f} | {paired[label]:.2f} | {paired[label] / paired['onnx-fp32']:.2f} | "
              f"{warm[label]:.2f} | {warm[label] / warm['onnx-fp32']:.2f} |")
    for ort_label in ("ORT quantize_static", "ORT quantize_static u8"):
        print(f"- qconvert onnx-qdq / {ort_label}: paired {paired['qconvert onnx-qdq'] / paired[ort_label]:.2f}×, "
              f"warm {warm['qconvert onnx-qdq'] / warm[ort_label]:.2f}×")

    kernels = profiles(paths, feeds, options.threads, options.profile_runs, options.rounds)
    for label, path in paths.items():
        graph = optimized_graph(path, options.threads, Path(path).with_suffix(".ort_optimized.onnx"))
        types = collections.Counter(op_label(n) for n in graph.node)
        print(f"\n### {label}: onnxruntime's optimized graph ({len(graph.node)} nodes)\n")
        print(", ".join(f"{t} {c}" for t, c in types.most_common()))
        for pattern, count in residual_patterns(graph).most_common():
            print(f"- {count}× {pattern}")
        by_type: dict[str, list] = {}
        for op, us in kernels[label].values():
            by_type.setdefault(op, [0, 0.0])
            by_type[op][0] += 1
            by_type[op][1] += us
        total = sum(us for _, us in by_type.values())
        print(f"\nkernel time per run: {total / 1000:.2f} ms (profiler; per node the median of "
              f"{options.profile_runs} runs, least of {options.rounds} rounds)\n")
        print("| op type | nodes run | µs per run | share |\n|---|---|---|---|")
        for op, (count, us) in sorted(by_type.items(), key=lambda kv: -kv[1][1]):
            print(f"| {op} | {count} | {us:.0f} | {us / total:.1%} |")
        if options.nodes:
            print("\n| node | op type | µs |\n|---|---|---|")
            print("\n".join(f"| {node} | {op} | {us:.0f} |" for node, (op, us) in kernels[label].items()))


if __name__ == "__main__":
    main()

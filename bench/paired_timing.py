"""Latency of several onnxruntime artifacts with their runs alternated one by one, in a fresh process.

    python -m bench.paired_timing REQUEST.json      (paths, feeds .npz, threads, pairs -> result .json)

On a shared machine whose speed drifts by several times within minutes, only runs side by side give
ratios that hold; a fresh process keeps other runtimes' thread pools (torch, TensorFlow) out of the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WARMUP = 5


def paired_ms(paths: dict[str, str], feeds: dict[str, np.ndarray], threads: int, pairs: int = 200) -> dict[str, float]:
    """Median ms per artifact, measured in a child process (see the module docstring)."""
    from qconvert.backends.measure import thread_environment

    with tempfile.TemporaryDirectory(prefix="qconvert-paired-") as work:
        np.savez(Path(work) / "feeds.npz", **feeds)
        request = {"paths": paths, "feeds": str(Path(work) / "feeds.npz"), "threads": threads, "pairs": pairs,
                   "result": str(Path(work) / "result.json")}
        (Path(work) / "request.json").write_text(json.dumps(request))
        subprocess.run([sys.executable, "-m", "bench.paired_timing", str(Path(work) / "request.json")],
                       env=thread_environment(threads), check=True)
        return json.loads((Path(work) / "result.json").read_text())


def main(request_path: str) -> None:
    from qconvert.backends.onnx.runtime import OrtSession

    request = json.loads(Path(request_path).read_text())
    with np.load(request["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    # No spin-waiting: alternating sessions would otherwise take each other's cores (measured: the
    # float UNet 3x slower next to two int8 sessions than alone).
    sessions = {name: OrtSession(path, "cpu", request["threads"], spin=False)
                for name, path in request["paths"].items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for index in range(request["pairs"] + WARMUP):
        for name, session in sessions.items():
            began = time.perf_counter()
            session.run(feeds)
            if index >= WARMUP:
                times[name].append((time.perf_counter() - began) * 1000)
    Path(request["result"]).write_text(json.dumps({n: float(np.median(t)) for n, t in times.items()}))


if __name__ == "__main__":
    main(sys.argv[1])

"""Run an artifact (or the source) in a child process and collect outputs, latency and peak memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Measurement:
    status: str  # ok | failed | skipped
    error: str | None = None
    outputs: list[np.ndarray] = field(default_factory=list)
    eval_outputs: list[np.ndarray] = field(default_factory=list)  # on the --eval set, when one was given
    latencies_ms: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    device: str | None = None
    traceback: str | None = None

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.latencies_ms)) if self.latencies_ms else None

    @property
    def p90_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 90)) if self.latencies_ms else None


@dataclass(frozen=True)
class RunSettings:
    device: str = "cpu"
    threads: int = 1
    warmup: int = 3
    runs: int = 20
    min_seconds: float = 1.0
    timeout_s: float = 900.0


def thread_environment(threads: int) -> dict[str, str]:
    """Every runtime's thread pools sized alike, set before the child imports anything."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[name] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def measure_in_child(
    opener: str,
    artifact: str,
    options: dict,
    feeds: dict[str, np.ndarray],
    timing_feeds: dict[str, np.ndarray],
    settings: RunSettings,
    eval_feeds: dict[str, np.ndarray] | None = None,
    eval_batch: int = 32,
) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="qconvert-run-") as work:
        work_dir = Path(work)
        np.savez(work_dir / "feeds.npz", **feeds)
        if eval_feeds:
            np.savez(work_dir / "eval.npz", **eval_feeds)
        np.savez(work_dir / "timing.npz", **timing_feeds)
        request = {
            "opener": opener, "artifact": artifact, "options": options, "device": settings.device,
            "threads": settings.threads, "warmup": settings.warmup, "runs": settings.runs,
            "min_seconds": settings.min_seconds, "feeds": str(work_dir / "feeds.npz"),
            "timing_feeds": str(work_dir / "timing.npz"), "outputs": str(work_dir / "outputs.npz"),
            "result": str(work_dir / "result.json"),
            "eval_feeds": str(work_dir / "eval.npz") if eval_feeds else None, "eval_batch": eval_batch,
            "eval_outputs": str(work_dir / "eval_outputs.npz"),
        }
        (work_dir / "request.json").write_text(json.dumps(request))
        try:
            process = subprocess.run(
                [sys.executable, "-m", "qconvert.backends.child", str(work_dir / "request.json")],
                env=thread_environment(settings.threads), capture_output=True, text=True,
                timeout=settings.timeout_s,
            )
        except subprocess.TimeoutExpired:
            return Measurement("failed", f"timed out after {settings.timeout_s:.0f} s")
        result_path = work_dir / "result.json"
        if not result_path.exists():
            if process.returncode < 0:
                reason = f"crashed ({signal.Signals(-process.returncode).name})"
            else:
                tail = [line for line in process.stderr.splitlines() if line.strip()]
                reason = f"crashed (exit {process.returncode}): {tail[-1] if tail else 'no output'}"
            return Measurement("failed", reason)
        result = json.loads(result_path.read_text())
        measurement = Measurement(
            result["status"], result.get("error"), latencies_ms=result.get("latencies_ms", []),
            peak_rss_mb=result.get("peak_rss_mb"), device=result.get("device"),
            traceback=result.get("traceback"),
        )
        if measurement.status == "ok":
            with np.load(work_dir / "outputs.npz") as data:
                measurement.outputs = [data[f"arr_{i}"] for i in range(len(data.files))]
            if eval_feeds:
                with np.load(work_dir / "eval_outputs.npz") as data:
                    measurement.eval_outputs = [data[f"arr_{i}"] for i in range(len(data.files))]
        return measurement

"""Child-process entry point: open one artifact (or the source) in its runtime, run, time, report.

    python -m qconvert.backends.child REQUEST.json

The request names an opener (`module:function`), the artifact, feeds for parity and for timing,
optionally an evaluation set (run in batches, outside timing), and the thread count; the child writes outputs (.npz) and a result (.json) where the request says. Each
runtime gets a fresh process so imports, thread pools and peak memory do not leak between rows.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback

import numpy as np


def _open(opener: str, artifact: str, options: dict, device: str, threads: int):
    module_name, _, function = opener.partition(":")
    return getattr(importlib.import_module(module_name), function)(artifact, options, device, threads)


def _time_runs(session, feeds: dict, warmup: int, runs: int, min_seconds: float) -> list[float]:
    for _ in range(warmup):
        session.run(feeds)
    times = []
    started = time.perf_counter()
    # At least `runs` runs, more for fast models so the median is not one timer tick.
    while len(times) < runs or (time.perf_counter() - started < min_seconds and len(times) < 50 * runs):
        begin = time.perf_counter()
        session.run(feeds)
        times.append((time.perf_counter() - begin) * 1000.0)
    return times


def _run_batches(session, prepare, finish, path: str, batch: int) -> list[np.ndarray]:
    """Accuracy evaluation: the whole set in batches, outputs concatenated along the first axis."""
    with np.load(path) as data:
        feeds = {k: data[k] for k in data.files}
    count = len(next(iter(feeds.values())))
    parts: list[list[np.ndarray]] = []
    for start in range(0, count, batch):
        outputs = finish(session.run(prepare({k: v[start:start + batch] for k, v in feeds.items()})))
        if not parts:
            parts = [[] for _ in outputs]
        for part, output in zip(parts, outputs):
            part.append(np.asarray(output))
    return [np.concatenate(part) for part in parts]


def peak_rss_mb() -> float:
    """VmHWM: this process's own peak. ru_maxrss would carry the forking parent's peak across exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(request_path: str) -> int:
    from qconvert.backends.session import DeviceUnavailable

    with open(request_path) as f:
        request = json.load(f)
    result: dict = {"status": "ok"}
    try:
        session = _open(request["opener"], request["artifact"], request.get("options", {}),
                        request["device"], request["threads"])
        result["device"] = getattr(session, "device", request["device"])
        # Feeds come in the IR's layout and dtypes; a session whose artifact differs (NHWC I/O, say)
        # converts them once in prepare(), outside the timed runs, and converts outputs back in finish().
        prepare = getattr(session, "prepare", lambda feeds: feeds)
        finish = getattr(session, "finish", lambda outputs: outputs)
        # Timing first: the peak memory reported is that of running the model at the timing batch,
        # not of the larger parity and evaluation batches that follow.
        with np.load(request["timing_feeds"]) as data:
            timing_feeds = prepare({k: data[k] for k in data.files})
        result["latencies_ms"] = _time_runs(
            session, timing_feeds, request["warmup"], request["runs"], request.get("min_seconds", 1.0)
        )
        result["peak_rss_mb"] = peak_rss_mb()
        with np.load(request["feeds"]) as data:
            feeds = prepare({k: data[k] for k in data.files})
        outputs = finish(session.run(feeds))
        np.savez(request["outputs"], *[np.asarray(o) for o in outputs])
        if request.get("eval_feeds"):
            np.savez(request["eval_outputs"], *_run_batches(session, prepare, finish, request["eval_feeds"],
                                                             request["eval_batch"]))
    except DeviceUnavailable as error:
        result = {"status": "skipped", "error": str(error)}
    except Exception as error:  # reported as a failed row by the parent, never raised there
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}".splitlines()[0][:400],
                  "traceback": traceback.format_exc()}
    result.setdefault("peak_rss_mb", peak_rss_mb())
    with open(request["result"], "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

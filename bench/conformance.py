"""`make conformance`: ONNX's backend node tests through each emitter, written to bench/CONFORMANCE.md.

Passed / claimed / total per emitter, every refusal's reason and every failure, and the ops claimed.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.machine import describe
from qconvert.fileio import atomic_path
from tests.conformance.suite import BACKENDS, Outcome, claimed_cases, claimed_ops, node_cases, run_cases_isolated


def _backend_section(backend: str, total: int, suite_ops: set[str]) -> tuple[str, dict]:
    began = time.perf_counter()
    cases = claimed_cases(backend)
    isolated = run_cases_isolated(cases, backend)
    results = [isolated[case.name] for case in cases]
    seconds = time.perf_counter() - began
    counts = Counter(r.outcome for r in results)
    ops = claimed_ops(backend)
    summary = {"backend": backend, "total": total, "claimed": len(results), "passed": counts[Outcome.PASSED],
               "refused": counts[Outcome.REFUSED], "failed": counts[Outcome.FAILED] + counts[Outcome.ERROR],
               "ops": len(ops), "seconds": seconds}
    lines = [f"## {backend}", "",
             f"{summary['passed']} passed / {summary['claimed']} claimed / {total} node tests; "
             f"{summary['refused']} refused at emit time, {summary['failed']} failed; "
             f"{len(ops)} ops claimed; {seconds:.0f} s.", ""]
    reasons: dict[str, list[str]] = defaultdict(list)
    for r in results:
        if r.outcome is Outcome.REFUSED:
            reasons[r.detail.split(" (node ")[0]].append(r.case)
    if reasons:
        lines += ["Refused at emit time (reason: cases):", ""]
        lines += [f"- {reason}: {', '.join(sorted(cases))}" for reason, cases in sorted(reasons.items())]
        lines.append("")
    bad = [r for r in results if r.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if bad:
        lines += ["Failed (wrong result or crash):", ""]
        lines += [f"- {r.case}: {r.outcome.value}: {r.detail}" for r in bad]
        lines.append("")
    lines += [f"Ops claimed ({len(ops)}): {', '.join(sorted(ops))}", ""]
    unclaimed = sorted(suite_ops - ops)
    lines += [f"Ops in the suite not claimed ({len(unclaimed)}): {', '.join(unclaimed)}", ""]
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/CONFORMANCE.md")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="default: every emitter")
    args = parser.parse_args()
    cases = node_cases()
    suite_ops = {op for case in cases for op in case.ops if "::" not in op}
    sections, summaries = [], []
    for backend in args.backend or BACKENDS:
        text, summary = _backend_section(backend, len(cases), suite_ops)
        sections.append(text)
        summaries.append(summary)
        print(f"{backend}: {summary['passed']} passed / {summary['claimed']} claimed / {summary['total']}; "
              f"{summary['refused']} refused, {summary['failed']} failed; {summary['ops']} ops", flush=True)
    import onnx

    header = [
        "# ONNX backend node tests", "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {describe()}.", "",
        f"Command: `make conformance` (`python -m bench.conformance --out {args.out}`); onnx {onnx.__version__}, "
        f"{len(cases)} node tests from `onnx.backend.test.case.node`. A case is claimed when the emitter has an "
        "entry for every op in its graph; it runs in a child process per core, case after case (emit, convert, load in "
        "the runtime, run; a native abort is that case's failure) and is compared with the suite's expected outputs at the suite's tolerances. int64/float64 values may come "
        "back as int32/float32 (TFLite has no 64-bit kernels) but must be equal within tolerance.", "",
        "| emitter | passed | claimed | node tests | refused | failed | ops claimed |",
        "|---|---|---|---|---|---|---|",
        *[f"| {s['backend']} | {s['passed']} | {s['claimed']} | {s['total']} | {s['refused']} | {s['failed']} | "
          f"{s['ops']} |" for s in summaries], "",
    ]
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text("\n".join(header + sections))


if __name__ == "__main__":
    main()

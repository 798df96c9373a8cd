"""Run node-test cases in a child process, one result line per case, so that a runtime that aborts on a
case (a native crash) is reported as that case's failure instead of ending the test session.

    python -m tests.conformance.worker BACKEND RESULTS.jsonl < case names
"""

from __future__ import annotations

import json
import sys


def main(backend: str, results_path: str) -> int:
    from tests.conformance.suite import node_cases, quiet_environment, run_case

    quiet_environment()
    cases = {case.name: case for case in node_cases()}
    with open(results_path, "a") as results:
        for line in sys.stdin:
            name = line.strip()
            if not name:
                continue
            result = run_case(cases[name], backend)
            results.write(json.dumps({"case": name, "outcome": result.outcome.value, "detail": result.detail}) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

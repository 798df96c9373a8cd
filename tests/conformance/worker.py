"""Run node-test cases in a child process, one result line per case, so that a runtime that aborts on a
case (a native crash) is reported as that case's failure instead of ending the test session.

    python -m tests.conformance.worker BACKEND RESULTS.jsonl CASES.pickle < case names

CASES.pickle is the parent's {name: NodeCase} (suite.run_cases_isolated writes it), not a user's file.
"""

from __future__ import annotations

import json
import sys


def main(backend: str, results_path: str, cases_path: str) -> int:
    import pickle

    from tests.conformance.suite import quiet_environment, run_case

    quiet_environment()
    with open(cases_path, "rb") as file:
        cases = pickle.load(file)
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
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))

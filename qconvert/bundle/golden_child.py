"""Child process of the golden run: verify.py's own code runs the golden inputs and writes the expected outputs.

    python -m qconvert.bundle.golden_child BUNDLE SPEC.json OUT.npz

SPEC holds the manifest keys verify.py's run_golden reads (target, golden, io). It imports verify.py's code and
numpy only, so its start is the runtime's import, as verify.py's is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from qconvert.bundle.verify_template import run_golden


def main(folder: str, spec_path: str, out: str) -> int:
    outputs = run_golden(Path(folder), json.loads(Path(spec_path).read_text()))
    np.savez(out, **{f"output_{i}": output for i, output in enumerate(outputs)})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

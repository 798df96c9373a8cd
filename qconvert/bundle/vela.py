"""An Arm Ethos-U estimate of an integer TFLite bundle with Vela (ethos-u-vela), reported as information: how many
operators the NPU takes, cycles and time at Vela's default clock, SRAM and flash use. Vela compiles its own copy
of the model; nothing of it goes into the bundle but these figures."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ACCELERATOR = "ethos-u55-128"
RUN = "import sys; from ethosu.vela.vela import main; sys.exit(main())"


def estimate(model: Path, work: Path) -> dict:
    """The estimate, or {"skipped": reason} where Vela is absent or refuses the model."""
    if importlib.util.find_spec("ethosu") is None:
        return {"skipped": "ethos-u-vela is not installed (pip install ethos-u-vela)"}
    out = work / "vela"
    process = subprocess.run([sys.executable, "-c", RUN, str(model), "--output-dir", str(out),
                              "--accelerator-config", ACCELERATOR], capture_output=True, text=True, timeout=900)
    summaries = sorted(out.glob(f"{model.stem}_summary_*.csv"))
    if process.returncode != 0 or not summaries:
        lines = [line for line in (process.stderr + process.stdout).splitlines() if line.strip()]
        return {"skipped": f"vela failed: {lines[-1] if lines else f'exit {process.returncode}'}"}
    with open(summaries[0]) as f:
        row = next(csv.DictReader(f))
    counts = {kind: int(n) for kind, n in re.findall(r"(CPU|NPU) operators = (\d+)", process.stdout)}
    from importlib.metadata import version

    return {"vela": version("ethos-u-vela"), "accelerator": row["accelerator_configuration"],
            "system_config": row["system_config"], "clock_hz": float(row["core_clock"]),
            "npu_operators": counts.get("NPU"), "cpu_operators": counts.get("CPU"),
            "cycles": int(float(row["cycles_total"])), "inference_ms": 1000.0 * float(row["inference_time"]),
            "sram_kib": float(row["sram_memory_used"]), "off_chip_flash_kib": float(row["off_chip_flash_memory_used"])}

"""Describe the machine a benchmark ran on: cores, CPU model and the SIMD flags that decide speed."""

from __future__ import annotations

import os
import platform

INTERESTING_FLAGS = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
                     "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve"]


def describe() -> str:
    from qconvert.backends.hardware import physical_cores

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags |= set(value.split())
    except OSError:
        pass
    present = [f for f in INTERESTING_FLAGS if f in flags]
    return (f"{model}; {os.cpu_count()} logical / {physical_cores()} physical cores; "
            f"{platform.machine()}; flags: {' '.join(present) or 'unknown'}")

"""What the machine has: physical core count (the default thread count for every runtime)."""

from __future__ import annotations

import os


def physical_cores() -> int:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo, limited by this process's CPU affinity."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        cores, physical = set(), "0"
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    cores.add((physical, value.strip()))
        if cores:
            return max(1, min(len(cores), allowed))
    except OSError:
        pass
    return max(1, allowed)

"""How sparsity grows over the steps of iterative pruning."""

from __future__ import annotations


def cubic_schedule(final: float, steps: int, initial: float = 0.0) -> list[float]:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f)(1 - t/n)^3 for t = 1..n. Large steps first, while many
    redundant weights remain; small ones near the end, where each weight matters more. One step is
    one-shot pruning to `final`."""
    return [final + (initial - final) * (1 - t / steps) ** 3 for t in range(1, steps + 1)]

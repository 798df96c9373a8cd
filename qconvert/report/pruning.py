"""What pruning did to the float IR, step by step, for the report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PruneStep:
    step: int  # from 1
    target: float  # the schedule's sparsity for this step
    sparsity: float  # achieved: zero weights / prunable weights (channel: share of the parameters removed)
    params: int  # float parameters of the whole IR after the step
    nonzero: int  # of which non-zero
    seconds: float
    macs: int | None = None  # channel pruning: multiply-accumulates per sample after the step
    layers: list[dict] = field(default_factory=list)  # per weight (unstructured) or per channel group


@dataclass
class PruneRun:
    method: str  # layer | global | channel | N:M
    sparsity: float  # asked for
    params_before: int
    nonzero_before: int
    macs_before: int | None = None
    steps: list[PruneStep] = field(default_factory=list)
    frozen: dict[str, int] = field(default_factory=dict)  # channel: why groups were left alone -> how many
    magnitudes: str | None = None  # layer, global: folded | trained (qconvert.passes.prune_magnitude.Magnitudes)

    @property
    def last(self) -> PruneStep | None:
        return self.steps[-1] if self.steps else None

"""What `--prune-method` names: the kind of pruning, and how much it takes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qconvert.errors import UsageError


class PruneKind(enum.Enum):
    LAYER = "layer"  # unstructured L1, each weight to the sparsity by its own threshold
    GLOBAL = "global"  # unstructured L1, one threshold across every prunable weight
    N_M = "n:m"  # keep the N largest of every M weights along the reduction axis (2:4)
    CHANNEL = "channel"  # structured: filters removed, the graph shrinks

    @property
    def structured(self) -> bool:
        return self is PruneKind.CHANNEL


@dataclass(frozen=True)
class PruneMethod:
    kind: PruneKind
    n: int = 0  # N:M only
    m: int = 0

    @property
    def name(self) -> str:
        return f"{self.n}:{self.m}" if self.kind is PruneKind.N_M else self.kind.value

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity an N:M pattern implies; None where --prune chooses it."""
        return (self.m - self.n) / self.m if self.kind is PruneKind.N_M else None


def parse_method(text: str) -> PruneMethod:
    """layer | global | channel | N:M (e.g. 2:4)."""
    text = text.strip().lower()
    if ":" in text:
        n, _, m = text.partition(":")
        if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
            raise UsageError(f"--prune-method {text}: N:M needs whole numbers 0 < N < M, e.g. 2:4")
        return PruneMethod(PruneKind.N_M, int(n), int(m))
    kinds = [k.value for k in PruneKind if k is not PruneKind.N_M]
    if text not in kinds:
        raise UsageError(f"--prune-method {text}: choose {', '.join(kinds)} or N:M (e.g. 2:4)")
    return PruneMethod(PruneKind(text))

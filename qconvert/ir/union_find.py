"""Union-find over hashable keys: the quantization plan's shared scales and the channel-group analysis."""

from __future__ import annotations

from collections.abc import Hashable


class UnionFind:
    """Disjoint sets. `union(a, b)` keeps `a`'s root as the root of the merged set, so a caller that unions
    in a fixed order gets the same representatives every run."""

    def __init__(self):
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, key: Hashable) -> Hashable:
        root = key
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while key != root:  # path compression: later finds are one step
            key, self.parent[key] = self.parent[key], root
        return root

    def union(self, a: Hashable, b: Hashable) -> Hashable:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        return ra

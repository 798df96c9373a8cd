"""Iterative channel pruning: every step's kept counts are rounded from the unpruned channel counts, so K
steps end where one step to the same sparsity ends."""

from __future__ import annotations

import pytest

from qconvert.pipeline.options import PruneOptions
from qconvert.prune.iterate import prune_to
from qconvert.prune.method import PruneKind, PruneMethod
from tests.ir import channel_graphs


def _kept(steps: int, sparsity: float = 0.5, multiple_of: int = 1):
    options = PruneOptions(sparsity, PruneMethod(PruneKind.CHANNEL), steps=steps, multiple_of=multiple_of)
    _, run, _ = prune_to(channel_graphs.residual(), options)
    return run, [{layer["name"]: layer["kept"] for layer in step.layers} for step in run.steps]


def test_two_channel_steps_end_at_the_kept_counts_of_one():
    _, (one,) = _kept(1)
    run, (first, second) = _kept(2)
    assert one == {"a": 8, "out": 4}  # 16 channels at 0.5; the graph output stays
    # cubic schedule to 0.5 in 2 steps: 0.4375 (16 -> 9), then 0.5 of the original (9 -> 8), not 0.5 of 9
    assert [step.target for step in run.steps] == pytest.approx([0.4375, 0.5])
    assert first == {"a": 9, "out": 4} and second == one
    assert run.steps[-1].params == _kept(1)[0].steps[-1].params


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_steps_rounded_to_a_multiple_end_at_one_steps_counts(steps):
    # 16 channels to 0.5 by multiples of 8: one step keeps 8. Rounding each step's share of the channels
    # left up to 8 would keep 16 at every step (16 * 0.5625 = 9 -> 16, then 16 * 0.89 -> 16).
    _, (one,) = _kept(1, multiple_of=8)
    _, kept = _kept(steps, multiple_of=8)
    assert one == {"a": 8, "out": 4}
    assert kept[-1] == one
    assert all(a["a"] >= b["a"] for a, b in zip(kept, kept[1:]))


def test_frozen_groups_count_by_kind_of_reason_and_keep_their_own_in_the_step():
    run, _ = _kept(1)
    assert run.frozen == {"graph output …": 1}
    frozen = {layer["name"]: layer["frozen"] for layer in run.steps[0].layers}
    assert frozen == {"a": None, "out": "graph output 'out'"}

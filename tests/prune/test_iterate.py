"""Iterative channel pruning: each step removes its share of the channels left, so K steps end where one
step to the same sparsity ends."""

from __future__ import annotations

import pytest

from qconvert.pipeline.options import PruneOptions
from qconvert.prune.iterate import prune_to
from qconvert.prune.method import PruneKind, PruneMethod
from tests.ir import channel_graphs


def _kept(steps: int, sparsity: float = 0.5):
    options = PruneOptions(sparsity, PruneMethod(PruneKind.CHANNEL), steps=steps, multiple_of=1)
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


def test_frozen_groups_count_by_kind_of_reason_and_keep_their_own_in_the_step():
    run, _ = _kept(1)
    assert run.frozen == {"graph output …": 1}
    frozen = {layer["name"]: layer["frozen"] for layer in run.steps[0].layers}
    assert frozen == {"a": None, "out": "graph output 'out'"}

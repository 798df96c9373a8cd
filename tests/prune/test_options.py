"""The pruning method names, the cubic schedule and the option checks: numbers and one-line errors."""

from __future__ import annotations

import pytest

from qconvert.errors import UsageError
from qconvert.pipeline.options import PruneOptions
from qconvert.prune.method import PruneKind, PruneMethod, parse_method
from qconvert.prune.schedule import cubic_schedule


def test_method_names_parse_to_kinds():
    assert parse_method("global") == PruneMethod(PruneKind.GLOBAL)
    assert parse_method(" Layer ") == PruneMethod(PruneKind.LAYER)
    assert parse_method("channel").kind.structured
    nm = parse_method("2:4")
    assert (nm.kind, nm.n, nm.m, nm.name, nm.fixed_sparsity) == (PruneKind.N_M, 2, 4, "2:4", 0.5)


@pytest.mark.parametrize("text", ["filters", "4:2", "0:4", "a:b", "2:"])
def test_bad_method_is_one_line(text):
    with pytest.raises(UsageError) as error:
        parse_method(text)
    assert "--prune-method" in str(error.value) and "\n" not in str(error.value)


def test_cubic_schedule_front_loads_and_ends_at_the_target():
    steps = cubic_schedule(0.8, 4)
    # s_t = 0.8 (1 - (1 - t/4)^3): 0.8 * (1 - 27/64), 0.8 * (1 - 1/8), 0.8 * (1 - 1/64), 0.8
    assert steps == pytest.approx([0.4625, 0.7, 0.7875, 0.8])
    assert cubic_schedule(0.5, 1) == [0.5]
    increments = [b - a for a, b in zip([0.0, *steps], steps)]
    assert increments == sorted(increments, reverse=True)


@pytest.mark.parametrize("kwargs, flag", [
    ({"sparsity": 1.0}, "--prune 1"), ({"sparsity": -0.1}, "--prune -0.1"),
    ({"sparsity": 0.6, "method": PruneMethod(PruneKind.N_M, 2, 4)}, "pass --prune 0.5"),
    ({"sparsity": 0.5, "steps": 0}, "--prune-steps 0"),
    ({"sparsity": 0.5, "method": PruneMethod(PruneKind.N_M, 2, 4), "steps": 3}, "--prune-steps 3"),
    ({"sparsity": 0.5, "importance": "taylor"}, "--prune-importance taylor"),
    ({"sparsity": 0.5, "multiple_of": 0}, "--prune-multiple-of 0"),
    ({"sparsity": 0.5, "magnitudes": "raw"}, "--prune-magnitudes raw: choose folded or trained"),
    ({"magnitudes": "raw"}, "--prune-magnitudes raw"),  # checked with pruning off too (prune-sweep's options)
])
def test_bad_prune_options_are_one_line(kwargs, flag):
    with pytest.raises(UsageError) as error:
        PruneOptions(**kwargs)
    assert flag in str(error.value) and "\n" not in str(error.value)


def test_no_sparsity_prunes_nothing():
    assert not PruneOptions().prunes and not PruneOptions(0.0).prunes and PruneOptions(0.3).prunes


def test_magnitudes_are_typed_whatever_the_caller_passed():
    from qconvert.passes.prune_magnitude import Magnitudes

    assert PruneOptions().magnitudes is Magnitudes.FOLDED
    assert PruneOptions(None, magnitudes="trained").magnitudes is Magnitudes.AS_TRAINED
    assert PruneOptions(0.5, magnitudes=Magnitudes.AS_TRAINED).magnitudes is Magnitudes.AS_TRAINED

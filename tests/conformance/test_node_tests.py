"""Every ONNX node test whose ops an emitter claims passes, or is refused at emit time with its reason."""

from __future__ import annotations

import pytest

from tests.conformance.suite import BACKENDS, Outcome, claimed_cases, claimed_ops, node_cases, run_case

# The floor for each emitter's coverage (ops with an emitter entry).
MIN_CLAIMED_OPS = 120


def _params():
    params = []
    for backend in BACKENDS:
        for case in claimed_cases(backend):
            params.append(pytest.param(backend, case, id=f"{backend}:{case.name}"))
    return params


@pytest.mark.parametrize(("backend", "case"), _params())
def test_claimed_node_test(backend, case):
    result = run_case(case, backend)
    assert result.outcome in (Outcome.PASSED, Outcome.REFUSED), f"{result.outcome.value}: {result.detail}"
    if result.outcome is Outcome.REFUSED:
        assert "(" in result.detail and case.name, "a refusal names its reason"


@pytest.mark.parametrize("backend", BACKENDS)
def test_claims_enough_ops(backend):
    claimed = claimed_ops(backend)
    assert len(claimed) >= MIN_CLAIMED_OPS, sorted(claimed)


def test_suite_is_the_full_onnx_node_suite():
    cases = node_cases()
    assert len(cases) > 1500
    assert {"test_conv_with_strides_padding", "test_resize_upsample_scales_cubic"} <= {c.name for c in cases}

"""report.json back into a ConversionResult (qconvert.report.load): every section comes back, so a page rendered
from a run's report.json (as `qconvert package` renders the bundle's report.html) is the page the run wrote."""

from __future__ import annotations

import json

import pytest

from qconvert.report.html import report_html
from qconvert.report.load import result_from_dict
from tests.report.sample_results import full_result
from tests.report.test_html_pruning import pruned_result


@pytest.mark.parametrize("make", [full_result, pruned_result])
def test_round_trip(make):
    result = make()
    saved = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # report.json is strict JSON
    loaded = result_from_dict(saved)
    assert loaded.to_dict() == result.to_dict()
    assert report_html(loaded) == report_html(result)
    assert loaded.rows[1].sqnr_db == float("inf") and loaded.bundles[0].sqnr_vs_ir_db == float("inf")
    assert loaded.bundles[0].micro.arena_bytes == 123_456


def test_unknown_keys_are_ignored_and_missing_sections_empty():
    data = json.loads(json.dumps(full_result().to_dict()))
    for key in ("bundles", "pruning", "sensitivity", "training", "int8_parity"):
        del data[key]
    data["rows"][0]["from_a_newer_qconvert"] = 1
    loaded = result_from_dict(data)
    assert loaded.bundles == [] and loaded.pruning is None and loaded.sensitivity is None
    assert [r.target for r in loaded.rows] == [r.target for r in full_result().rows]


def test_not_a_report_raises():
    with pytest.raises((KeyError, TypeError)):
        result_from_dict({"model": "m"})

"""Channel pruning through the command line on the tiny VGG: the graph shrinks, every target runs it."""

from __future__ import annotations

import json

import pytest

from tests.prune.test_cli_prune import _convert, _weights, sets  # noqa: F401  (sets: the fixture)


def test_channel_pruning_shrinks_the_graph(tiny_models, sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32,torch-fp32", "--eval", sets["eval"],
                      "--prune", 0.5, "--prune-method", "channel", "--prune-multiple-of", 1)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    run, rows = report["pruning"], {row["target"]: row for row in report["rows"]}
    step = run["steps"][0]
    assert step["params"] < 0.45 * run["params_before"] and step["macs"] < 0.45 * run["macs_before"]
    assert step["nonzero"] == pytest.approx(step["params"], rel=0.01)  # removed, not zeroed
    assert rows["torch-fp32"]["status"] == "ok" and float(rows["torch-fp32"]["sqnr_db"]) > 60
    assert sum(w.size for w in _weights(rows["onnx-fp32"]["path"]).values()) < 0.45 * run["params_before"]

"""Pruning through the command line on the tiny VGG and the digits: the pruned float IR every target is
emitted from, zeros kept through fine-tuning and int8, the prune-sweep JSON, and bad options as one line
(channel pruning's smaller graph: test_cli_channel.py)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.cli.test_cli import only_line, run_cli

PRUNED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


@pytest.fixture(scope="module")
def sets(digits, tmp_path_factory):
    x_train, y_train, x_eval, y_eval = digits
    folder = tmp_path_factory.mktemp("prune_digits")
    paths = {"train": folder / "train.npz", "eval": folder / "eval.npz", "calib": folder / "calib.npz"}
    np.savez(paths["train"], x=x_train[:320], labels=y_train[:320])
    np.savez(paths["eval"], x=x_eval[:160], labels=y_eval[:160])
    np.savez(paths["calib"], x=x_train[320:384])
    return paths


def _convert(model, out, *args):
    return run_cli(model, "-o", out, "--runs", 2, "--samples", 4, "--threads", 1, "--json", *args)


def _weights(path) -> dict[str, np.ndarray]:
    """The weight input of every layer of an .onnx artifact (float, or the int8 behind a DequantizeLinear)."""
    model = onnx.load(str(path))
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    weights = {}
    for node in model.graph.node:
        if node.op_type in PRUNED_OPS and len(node.input) > 1:
            name = dequantized.get(node.input[1], node.input[1])
            if name in initializers:
                weights[name] = initializers[name]
    return weights


def _zeros(weights: dict[str, np.ndarray]) -> float:
    return sum(int(np.sum(w == 0)) for w in weights.values()) / sum(w.size for w in weights.values())


def test_global_pruning_reaches_every_target_and_int8_keeps_the_zeros(tiny_models, sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32,onnx-qdq,tflite-int8", "--calib",
                      sets["calib"], "--eval", sets["eval"], "--prune", 0.6)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    run = report["pruning"]
    assert run["method"] == "global" and len(run["steps"]) == 1
    assert run["steps"][0]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert run["steps"][0]["nonzero"] < 0.5 * run["nonzero_before"]
    rows = {row["target"]: row for row in report["rows"]}
    assert rows["pruned"]["status"] == "ok" and rows["pruned"]["sqnr_db"] < 40  # no longer the source's function
    assert float(rows["onnx-fp32"]["sqnr_db"]) > 60  # against the pruned IR it was emitted from
    assert _zeros(_weights(rows["onnx-fp32"]["path"])) == pytest.approx(0.6, abs=1e-3)
    # Symmetric int8 weights: every pruned zero is an integer zero (rounding may add a few more).
    assert _zeros(_weights(rows["onnx-qdq"]["path"])) >= 0.6 - 1e-3
    assert rows["tflite-int8"]["status"] == "ok"


def test_iterative_pruning_fine_tunes_between_steps_and_holds_the_masks(tiny_models, sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32", "--eval", sets["eval"], "--prune", 0.8,
                      "--prune-method", "layer", "--prune-steps", 2, "--finetune", "--train", sets["train"],
                      "--epochs", 1)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [s["target"] for s in report["pruning"]["steps"]] == pytest.approx([0.7, 0.8])
    assert [r["stage"] for r in report["training"]] == ["prune step 1/2", "finetune"]
    artifact = {row["target"]: row for row in report["rows"]}["onnx-fp32"]["path"]
    for name, weight in _weights(artifact).items():  # layer-wise: each weight at 0.8 after fine-tuning
        assert np.mean(weight == 0) == pytest.approx(0.8, abs=1 / weight.size + 1e-9), name


def test_prune_sweep_writes_the_curves(tiny_models, sets, tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("prune-sweep", tiny_models / "vgg.pt2", "--eval", sets["eval"], "--sparsities", "0,0.5",
                     "--methods", "layer,global,2:4", "--train", sets["train"], "--epochs", 1, "--lr", 1e-3,
                     "--threads", 1, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    sweep = json.loads((out / "prune_sweep.json").read_text())
    assert sweep["metric"] == "top1" and sweep["finetune"]["data"] == "labels"
    points = {(p["method"], p["sparsity"]): p for p in sweep["points"]}
    assert set(points) == {(m, s) for m in ("layer", "global", "2:4") for s in (0, 0.5)}
    for method in ("layer", "global", "2:4"):
        assert points[(method, 0)]["metric"]["top1"] == pytest.approx(sweep["reference"]["top1"])
        # Half the weights gone costs accuracy; one epoch of fine-tuning (320 digits) wins most of it back.
        pruned, tuned = points[(method, 0.5)]["metric"]["top1"], points[(method, 0.5)]["finetuned"]["top1"]
        assert pruned < sweep["reference"]["top1"] - 10 and tuned > pruned + 10, method
    assert points[("layer", 0.5)]["achieved"] == points[("global", 0.5)]["achieved"] == pytest.approx(0.5, abs=1e-4)
    # 2:4 leaves the stem dense (one input channel), so a little under half
    assert 0.45 < points[("2:4", 0.5)]["achieved"] < 0.5
    # one threshold across layers keeps the tiny VGG better than one per layer at the same sparsity
    assert points[("global", 0.5)]["metric"]["top1"] >= points[("layer", 0.5)]["metric"]["top1"]


@pytest.mark.parametrize("args, expected", [
    (["--prune", 1.5], "--prune 1.5"),
    (["--prune", 0.5, "--prune-method", "filters"], "--prune-method filters"),
    (["--prune", 0.8, "--prune-steps", 3], "add --finetune"),
    (["--prune", 0.5, "--prune-method", "channel", "--prune-depthwise"], "--prune-depthwise applies"),
    (["--prune", 0.6, "--prune-method", "2:4"], "pass --prune 0.5"),
])
def test_bad_pruning_options_are_one_line(tiny_models, tmp_path, args, expected):
    out = tmp_path / "out"
    result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32", *args)
    assert result.exit_code != 0
    assert expected in only_line(result)
    assert not out.exists()


def test_prune_sweep_needs_an_eval_set(tiny_models, tmp_path):
    result = run_cli("prune-sweep", tiny_models / "vgg.pt2", "-o", tmp_path / "o")
    assert result.exit_code != 0 and "--eval" in only_line(result)


@pytest.mark.parametrize("args, expected", [
    (["--prune-steps", 0], "--prune-steps 0"),
    (["--prune-importance", "taylor"], "--prune-importance"),
    (["--epochs", 0], "--epochs"),
])
def test_prune_sweep_shares_the_conversions_option_checks(tiny_models, tmp_path, args, expected):
    out = tmp_path / "o"
    result = run_cli("prune-sweep", tiny_models / "vgg.pt2", "--eval", tmp_path / "none.npz", "-o", out, *args)
    assert result.exit_code != 0 and expected in only_line(result)
    assert not out.exists()


def test_magnitudes_rank_folded_unless_asked_to_rank_as_trained(tiny_models, tmp_path):
    """The tiny VGG's convs carry BatchNorm that the exporter folded: by default the IR's weights rank as they
    are, --prune-magnitudes trained divides the BatchNorm out again (another set of zeros)."""
    zeros = {}
    for magnitudes in ("trained", "folded"):
        out = tmp_path / magnitudes
        result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32", "--prune", 0.6,
                          "--prune-magnitudes", magnitudes)
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        layers = report["pruning"]["steps"][0]["layers"]
        assert report["pruning"]["magnitudes"] == magnitudes
        ranked = [layer["ranked_as_trained"] for layer in layers if layer["op"] == "Conv"]
        assert ranked and all(ranked) if magnitudes == "trained" else not any(ranked)
        artifact = {row["target"]: row for row in report["rows"]}["onnx-fp32"]["path"]
        zeros[magnitudes] = {name: w == 0 for name, w in _weights(artifact).items()}
    assert any(not np.array_equal(zeros["trained"][name], zeros["folded"][name]) for name in zeros["trained"])

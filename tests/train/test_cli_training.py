"""Training through the command line: --finetune and --qat on the tiny torch CNN and the digits, the
training table in report.json, the parity references, and every bad training option as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qconvert.pipeline.options import TrainingOptions
from tests.cli.test_cli import only_line, run_cli
from tests.train.conftest import digits_at


@pytest.fixture(scope="module")
def digit_sets(digits, tmp_path_factory):
    """--train (300 labelled digits), --eval and --calib at the tiny CNN's 16x16."""
    x_train, y_train, x_eval, y_eval = digits
    folder = tmp_path_factory.mktemp("digits16")
    sets = {"train": folder / "train.npz", "eval": folder / "eval.npz", "calib": folder / "calib.npz"}
    np.savez(sets["train"], x=digits_at(x_train[:300], 16), labels=y_train[:300])
    np.savez(sets["eval"], x=digits_at(x_eval[:200], 16), labels=y_eval[:200])
    np.savez(sets["calib"], x=digits_at(x_train[300:364], 16))
    return sets


def _convert(model, out, *args):
    return run_cli(model, "-o", out, "--runs", 2, "--json", *args)


def test_finetune_trains_the_float_ir_that_the_targets_are_emitted_from(tiny_models, digits, tmp_path):
    x_train, y_train, x_eval, y_eval = digits
    np.savez(train := tmp_path / "train.npz", x=x_train[:640], labels=y_train[:640])
    np.savez(evaluation := tmp_path / "eval.npz", x=x_eval[:200], labels=y_eval[:200])
    out = tmp_path / "out"
    result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32", "--finetune", "--train", train,
                      "--eval", evaluation, "--epochs", 2, "--lr", 3e-4)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    [run] = report["training"]
    assert run["stage"] == "finetune" and run["data"] == "--train, labels" and run["loss"] == "cross-entropy"
    assert run["lr"] == 3e-4
    assert [e["epoch"] for e in run["epochs"]] == [0, 1, 2] and run["epochs"][1]["seconds"] > 0
    assert run["after"]["top1"] >= run["before"]["top1"] + 2  # the tiny VGG trained 4 epochs learns more
    rows = {row["target"]: row for row in report["rows"]}
    assert rows["finetuned"]["metrics"]["top1"] == pytest.approx(run["after"]["top1"])
    assert rows["finetuned"]["sqnr_db"] < 40  # it is no longer the source's function
    # The float artifact is compared with the fine-tuned IR it was emitted from.
    assert rows["onnx-fp32"]["status"] == "ok" and float(rows["onnx-fp32"]["sqnr_db"]) > 60  # "inf": exact
    assert rows["onnx-fp32"]["metrics"]["top1"] == pytest.approx(run["after"]["top1"])
    assert rows["source"]["metrics"]["top1"] == pytest.approx(run["before"]["top1"])


def test_finetune_folded_trains_the_folded_ir_and_the_report_says_which(tiny_models, digits, tmp_path):
    from qconvert.converters import load_source
    from qconvert.passes import cleanup

    x_train, y_train, _, _ = digits
    np.savez(train := tmp_path / "train.npz", x=x_train[:128], labels=y_train[:128])
    graph = cleanup(load_source(str(tiny_models / "vgg.pt2")).ir)
    consumers = {n.inputs[0].name for n in graph.graph if n.op_type == "Relu"}
    conv_relus = sum(n.op_type == "Conv" and n.outputs[0].name in consumers for n in graph.graph)
    runs = {}
    for flags in ((), ("--finetune-folded",)):
        out = tmp_path / ("folded" if flags else "batch")
        result = _convert(tiny_models / "vgg.pt2", out, "--to", "onnx-fp32", "--finetune", "--train", train,
                          "--epochs", 1, *flags)  # no --eval: the last epoch is kept, not epoch 0
        assert result.exit_code == 0, result.output
        [runs[flags]] = json.loads((out / "report.json").read_text())["training"]
    assert conv_relus > 0
    assert runs[()]["batchnorm"] == f"batch statistics, {conv_relus} layers"
    assert runs[("--finetune-folded",)]["batchnorm"] == "folded"
    # the same data, seed and rate: only the BatchNorm handling differs, and so do the trained weights
    after = [float(run["after"]["sqnr_db"]) for run in runs.values()]
    assert all(sqnr < 60 for sqnr in after) and after[0] != after[1]


def test_qat_trains_the_qdq_ir_every_int8_target_lowers(tiny_torch, digit_sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_torch["pt2"], out, "--to", "onnx-qdq,tflite-int8", "--calib", digit_sets["calib"],
                      "--qat", "--train", digit_sets["train"], "--eval", digit_sets["eval"], "--epochs", 1)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    [run] = report["training"]
    assert run["stage"] == "qat" and {"sqnr_db", "top1"} <= set(run["before"]) and run["best_epoch"] in (0, 1)
    assert run["lr"] == TrainingOptions.lr  # the default without --lr
    rows = {row["target"]: row for row in report["rows"]}
    for name in ("onnx-qdq", "tflite-int8"):
        assert rows[name]["status"] == "ok" and float(rows[name]["ir_sqnr_db"]) >= 20, rows[name]
    assert rows["onnx-qdq"]["metrics"]["top1"] == pytest.approx(run["after"]["top1"], abs=1.0)
    assert report["int8_parity"] and min(float(p["sqnr_db"]) for p in report["int8_parity"]) >= 20


def test_label_free_qat_distils_on_the_calibration_set(tiny_torch, digit_sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_torch["pt2"], out, "--to", "onnx-qdq", "--calib", digit_sets["calib"], "--qat",
                      "--epochs", 1)
    assert result.exit_code == 0, result.output
    [run] = json.loads((out / "report.json").read_text())["training"]
    assert run["data"] == "--calib, distilled" and run["loss"].startswith("distillation kl")


def test_weight_scale_search_refines_ptq_before_adaround(tiny_torch, digit_sets, tmp_path):
    out = tmp_path / "out"
    result = _convert(tiny_torch["pt2"], out, "--to", "onnx-qdq,tflite-int8", "--calib", digit_sets["calib"],
                      "--weight-granularity", "per-tensor", "--search-weight-scales", "--adaround",
                      "--eval", digit_sets["eval"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [run["stage"] for run in report["training"]] == ["weight-scales", "adaround"]
    search = report["training"][0]
    layers = [layer for layer in search["layers"]["layers"] if "changed" in layer]
    assert layers and all(layer["mse"] <= layer["mse_calibration"] for layer in layers)
    assert float(search["after"]["sqnr_db"]) >= float(search["before"]["sqnr_db"]) - 0.5, search
    rows = {row["target"]: row for row in report["rows"]}
    for name in ("onnx-qdq", "tflite-int8"):
        assert rows[name]["status"] == "ok", rows[name]
    assert min(float(p["sqnr_db"]) for p in report["int8_parity"]) >= 30


def test_searched_scales_that_lower_the_ir_sqnr_are_not_kept(tiny_torch, digit_sets, tmp_path, monkeypatch):
    """A search whose result is worse for the whole IR (here: every weight scale halved, the integers kept,
    so every layer's weights halve) is measured against calibration's scales and dropped."""
    import qconvert.train.weight_scales as weight_scales
    from qconvert.ir.values import copy_model

    def halved(qdq, float_model, calib, options=None):
        result = copy_model(qdq)
        for node in result.graph:
            codes = node.inputs[0].const_value if node.op_type == "DequantizeLinear" else None
            if codes is not None and codes.dtype.name == "INT8":
                scale = node.inputs[1]
                scale.const_value = ir_tensor(scale.const_value.numpy() * np.float32(0.5), scale.name)
        return result, {"method": "weight-scales", "layers": []}

    monkeypatch.setattr(weight_scales, "search_weight_scales", halved)
    out = tmp_path / "out"
    result = _convert(tiny_torch["pt2"], out, "--to", "onnx-qdq", "--calib", digit_sets["calib"],
                      "--search-weight-scales")
    assert result.exit_code == 0, result.output
    [run] = json.loads((out / "report.json").read_text())["training"]
    facts = run["layers"]
    assert facts["kept"] == "calibration", facts
    assert facts["ir_sqnr_db"]["searched"] < facts["ir_sqnr_db"]["calibration"] - 3
    assert run["after"]["sqnr_db"] == run["before"]["sqnr_db"]


def ir_tensor(array, name):
    import onnx_ir as ir

    return ir.tensor(array, name=name)


@pytest.mark.parametrize("args, message", [
    (["--to", "onnx-fp32", "--qat"], "--qat changes the static int8 IR"),
    (["--to", "onnx-fp32", "--search-weight-scales"], "--search-weight-scales changes the static int8 IR"),
    (["--to", "onnx-fp32", "--adaround"], "--adaround changes the static int8 IR"),
    (["--to", "onnx-fp32", "--finetune"], "--finetune needs training data"),
    (["--to", "onnx-fp32", "--train", "missing.npz", "--finetune"], "--train missing.npz: no such file"),
    (["--to", "onnx-fp32", "--train", "TRAIN"], "--train is read by --finetune and --qat"),
])
def test_bad_training_options_fail_in_one_line_before_any_work(tiny_torch, digit_sets, tmp_path, args, message):
    out = tmp_path / "out"
    args = [str(digit_sets["train"]) if a == "TRAIN" else a for a in args]
    result = run_cli(tiny_torch["pt2"], "-o", out, *args)
    assert result.exit_code != 0
    assert message in only_line(result)
    assert not out.exists()


def test_bad_training_labels_fail_in_one_line_and_write_nothing(tiny_torch, digits, tmp_path):
    x_train, y_train, _, _ = digits
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=digits_at(x_train[:20], 16), labels=y_train[:20] + 10)  # classes 10..19 of 10
    out = tmp_path / "out"
    result = run_cli(tiny_torch["pt2"], "-o", out, "--to", "onnx-fp32", "--finetune", "--train", bad)
    assert result.exit_code != 0
    assert "is not one of the first output's 10 classes" in only_line(result)
    assert not out.exists()

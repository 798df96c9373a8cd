"""The model zoo: registry entries complete, builders deterministic, BatchNorm randomization exact.

Only the cheapest entries are built here, at tiny sizes, through the zoo's own builders; the full
zoo runs in `make zoo` (bench/zoo.py)."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pytest

from bench.zoo import FLOAT_TARGETS, cell_status, floor_db, reason_key
from models.zoo.registry import FAMILIES, FORMATS, all_models, select
from models.zoo.torch_common import example_inputs, perturbed


def test_registry_covers_the_issue_and_is_complete():
    models = all_models()
    assert len({m.arch for m in models}) >= 30
    assert {m.family for m in models} == set(FAMILIES)
    for model in models:
        assert model.format in FORMATS and model.file.endswith("." + model.format)
        module, function = model.builder.split(":")
        assert callable(getattr(importlib.import_module(module), function)), model.name
        assert model.inputs, model.name
        for spec in model.inputs:
            assert len(spec.shape) >= 2 and all(isinstance(d, int) and d > 0 for d in spec.shape), model.name
            assert 0 in spec.dynamic, f"{model.name}: the batch must stay dynamic"
            if spec.dtype.startswith("int"):
                assert spec.int_range and spec.int_range[0] < spec.int_range[1], model.name
        if model.format == "pt":  # TorchScript records no shapes: the CLI needs them
            assert model.cli_args()[::2] == ["--input-shape"] * len(model.inputs)


def test_cli_args_name_typed_inputs():
    bert = select(["bert"])[0]
    assert bert.cli_args() == ["--input-shape", "input_ids=1,16:int64", "--input-shape", "attention_mask=1,16:int64"]
    assert select(["efficientnet_b0.pt"])[0].cli_args() == ["--input-shape", "1,3,64,64"]
    assert select(["resnet50"])[0].cli_args() == []


def test_keras_entries_come_in_both_formats():
    keras = select(families=["keras"])
    archs = {m.arch for m in keras}
    assert len(archs) == 10
    for arch in archs:
        assert {m.format for m in keras if m.arch == arch and not m.options["keras2"]} == {"h5", "keras"}


def test_perturbed_batchnorm_computes_the_measured_normalization():
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=6), rng.uniform(1e-4, 3, 6)
    gamma, beta, eps = rng.uniform(0.5, 1.5, 6), rng.uniform(-0.2, 0.2, 6), 1e-3
    new_mean, new_var, new_gamma, new_beta = perturbed(mean, var, gamma, beta, eps, rng)
    assert np.all(np.abs(new_var / var - 1) > 1e-3) and np.all(new_mean != mean.astype("float32"))
    x = rng.normal(size=(5, 6)) * np.sqrt(var) + mean
    expected = gamma * (x - mean) / np.sqrt(var + eps) + beta
    actual = new_gamma * (x - new_mean) / np.sqrt(new_var + eps) + new_beta
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def _outputs(program_path, model):
    import torch

    program = torch.export.load(program_path)
    with torch.no_grad():
        outputs = program.module()(*example_inputs(model, batch=3))
    return [o.numpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]


@pytest.mark.parametrize("name,size", [("vit_small", None), ("bert", None), ("yolov8_style", 64)])
def test_builders_are_deterministic_and_keep_dynamic_dims(tmp_path, name, size):
    import torch

    model = select([name])[0]
    if size:  # the detector at a tiny image size, through the same builder
        model = replace(model, inputs=tuple(replace(s, shape=(2, 3, size, size)) for s in model.inputs))
    builder = importlib.import_module(model.builder.split(":")[0])
    first, second = builder.prepared(model).state_dict(), builder.prepared(model).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key

    path = model.build(tmp_path)  # the saved program computes the prepared module's function
    outputs = _outputs(path, model)
    assert len(outputs) == model.outputs
    for output in outputs:
        assert output.shape[0] == 3  # batch 3 runs a program exported at batch 2
        assert np.isfinite(output).all() and np.abs(output).max() > 0
    program = torch.export.load(path)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    assert list(program.graph_signature.user_inputs) == [s.name for s in model.inputs]
    for spec in model.inputs:
        shape = placeholders[spec.name].meta["val"].shape
        dynamic = [axis for axis, d in enumerate(shape) if not isinstance(d, int)]
        assert dynamic == list(spec.dynamic), spec.name
    if name == "yolov8_style":  # BatchNorm statistics left at (0, 1) would fold into nothing
        variances = [v for k, v in first.items() if k.endswith("running_var")]
        means = [v for k, v in first.items() if k.endswith("running_mean")]
        assert variances and not any(torch.allclose(v, torch.ones_like(v)) for v in variances)
        assert not any(torch.allclose(m, torch.zeros_like(m)) for m in means)


def test_cells_apply_the_floors():
    result = {"rows": {"onnx-fp32": {"status": "ok", "sqnr_db": 59.0, "convert_s": 0.1},
                       "torch-fp16": {"status": "ok", "sqnr_db": 31.0, "convert_s": 0.1},
                       "torch-bf16": {"status": "ok", "sqnr_db": "inf", "convert_s": 0.1},
                       "tflite-fp32": {"status": "failed", "error": "Slice: input computed at run time"}}}
    assert [floor_db(t) for t in FLOAT_TARGETS] == [60, 30, 60, 30, 60, 30, 20]
    assert not cell_status(result, "onnx-fp32")[0]
    assert cell_status(result, "torch-fp16")[0] and cell_status(result, "torch-bf16")[1].startswith("exact")
    assert cell_status(result, "tflite-fp32") == (False, "Slice: input computed at run time",
                                                  "Slice: input computed at run time")
    assert reason_key("node 'conv_12' failed at 3.25 dB") == reason_key("node 'add_7' failed at 1.5 dB")
    assert reason_key("Slice_12 failed") == reason_key("Slice_3 failed")
    assert reason_key("SQNR below the 30 dB floor") != reason_key("SQNR below the 20 dB floor")


def test_models_that_rescale_pixels_themselves_get_pixels(tmp_path, monkeypatch):
    import bench.zoo as zoo_bench
    from models.zoo.keras_zoo import PIXEL_INPUT

    monkeypatch.setattr(zoo_bench, "ZOO", tmp_path)
    for model in select(families=["keras"]):
        (spec,) = model.inputs
        (sample,) = model.sample_inputs(4, seed=0)
        samples = zoo_bench.domain_samples(model)
        if model.arch in PIXEL_INPUT:
            assert spec.value_range == (0.0, 255.0)
            assert sample.min() >= 0 and sample.max() < 255 and sample.std() > 50
            command = zoo_bench.convert_command(model, ["onnx-fp32"], ["--calib", "random"])
            assert command[-2:] == ["--calib", str(samples)] and command.count("--calib") == 1
            stored = np.load(samples)
            assert stored.files == [spec.name] and stored[spec.name].shape[0] == zoo_bench.PARITY_SAMPLES
        else:
            assert spec.value_range is None and samples is None
            assert abs(sample.mean()) < 0.1 and 0.9 < sample.std() < 1.1

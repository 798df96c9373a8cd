"""The tiny fixtures and tiny reference models through qconvert.api.convert to the torch targets:
parity floors, int8 parity with onnx-qdq from both artifacts, Keras layout, and the artifact loading in a
fresh interpreter with torch alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qconvert.api import convert
from qconvert.backends.targets import EmitOptions, all_targets
from qconvert.backends.onnx.runtime import open_session as open_onnx
from qconvert.backends.torch.runtime import open_session as open_torch
from tests.backends.torch.helpers import sqnr

QUICK = {"threads": 1, "runs": 2, "warmup": 1, "parity_samples": 8}
FLOAT = ["torch-fp32", "torch-fp16", "torch-bf16"]


def rows(result) -> dict:
    return {row.target: row for row in result.rows}


def outputs(row, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """An artifact opened from its file in this process (ports as the IR has them: no facts needed)."""
    opener = open_torch if all_targets()[row.target].runtime == "torch" else open_onnx
    session = opener(row.path, {}, "cpu", 1)
    prepare = getattr(session, "prepare", lambda f: f)
    finish = getattr(session, "finish", lambda o: o)
    return finish(session.run(prepare(feeds)))


@pytest.fixture(scope="module")
def torch_result(tiny_torch, tmp_path_factory):
    return convert(f"{tiny_torch['factory']}:build", FLOAT + ["torch-dynamic"], input_shapes=["1,3,16,16"],
                   trust_code=True, out_dir=tmp_path_factory.mktemp("torch_torch"), **QUICK)


@pytest.fixture(scope="module")
def keras_result(tiny_keras, tmp_path_factory):
    return convert(str(tiny_keras["h5"]), ["torch-fp32", "torch-bf16"],
                   out_dir=tmp_path_factory.mktemp("torch_keras"), **QUICK)


@pytest.mark.parametrize("which", ["torch_result", "keras_result"])
def test_every_target_meets_its_parity_floor(which, request):
    result = request.getfixturevalue(which)
    floors = {name: target.parity_floor_db for name, target in all_targets().items()}
    for name, row in rows(result).items():
        if name == "source":
            continue
        assert row.status == "ok", (name, row.error)
        assert row.sqnr_db >= floors[name], (name, row.sqnr_db)
    assert rows(result)["torch-fp32"].sqnr_db >= 60


def test_keras_source_keeps_nhwc_and_io_layout_overrides(tiny_keras, tmp_path):
    from qconvert.converters import load_source
    from qconvert.passes import cleanup

    graph = cleanup(load_source(str(tiny_keras["h5"])).ir)
    emit = all_targets()["torch-fp32"].emit
    facts = emit(graph, tmp_path / "nhwc.pt", EmitOptions())
    assert facts["inputs"][0]["layout"] == "NHWC" and facts["inputs"][0]["perm"] is None
    facts = emit(graph, tmp_path / "nchw.pt", EmitOptions(io_layout="nchw"))
    assert facts["inputs"][0]["layout"] == "NCHW" and facts["inputs"][0]["perm"] == [0, 3, 1, 2]
    shape = [2 if not isinstance(d, int) else d for d in graph.graph.inputs[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ys = []
    for name, f in (("nhwc.pt", {}), ("nchw.pt", facts)):
        session = open_torch(str(tmp_path / name), f, "cpu", 1)
        ys.append(session.finish(session.run(session.prepare({graph.graph.inputs[0].name: x})))[0])
    np.testing.assert_allclose(ys[0], ys[1], atol=1e-5)


@pytest.fixture(scope="module")
def int8_results(tiny_models, tmp_path_factory):
    out = {}
    for name, spec in (("vgg", "vgg.pt2"), ("unet", "unet.h5")):
        out[name] = convert(str(tiny_models / spec), ["torch-int8", "onnx-qdq", "torch-fp32"],
                            calib=str(tiny_models / f"{name}_calib.npz"), calib_samples=32,
                            out_dir=tmp_path_factory.mktemp(f"torch_int8_{name}"), **QUICK)
    return out


@pytest.mark.parametrize("name", ["vgg", "unet"])
def test_int8_agrees_with_onnx_qdq(name, int8_results, tiny_models):
    result = int8_results[name]
    ours, qdq = rows(result)["torch-int8"], rows(result)["onnx-qdq"]
    assert ours.status == "ok" and qdq.status == "ok", (ours.error, qdq.error)
    assert rows(result)["torch-fp32"].sqnr_db >= 60
    with np.load(tiny_models / f"{name}_calib.npz") as data:
        feeds = {k: data[k][:8] for k in data.files if k != "labels"}
    a, b = outputs(ours, feeds), outputs(qdq, feeds)
    assert sqnr(b[0], a[0]) >= 35


def test_int8_uses_int8_kernels(int8_results):
    quantization = rows(int8_results["vgg"])["torch-int8"].quantization
    assert quantization["int8_kernels"]["Conv"] >= 2 and not quantization["float_fallbacks"]
    unet = rows(int8_results["unet"])["torch-int8"].quantization
    # The 2x2/stride-2 upsamplers run as int8 1x1 Conv + DepthToSpace (qconvert.passes.unfold_conv_transpose):
    # only the final Sigmoid stays float.
    assert unet["int8_kernels"]["Conv"] >= 2 and unet["int8_kernels"]["DepthToSpace"] >= 1
    assert set(unet["float_fallbacks"]) <= {"Sigmoid"}


def test_artifact_loads_without_qconvert(int8_results, torch_result):
    """The .pt opens with torch alone (qconvert never imported), int8 included."""
    import onnx

    qdq = onnx.load(rows(int8_results["vgg"])["onnx-qdq"].path)
    vgg_shape = ",".join(str(d.dim_value or 2) for d in qdq.graph.input[0].type.tensor_type.shape.dim)
    paths = [f'{rows(int8_results["vgg"])["torch-int8"].path}@{vgg_shape}',
             f'{rows(torch_result)["torch-fp32"].path}@2,3,16,16']
    code = (
        "import sys, torch\n"
        "for arg in sys.argv[1:]:\n"
        "    p, shape = arg.rsplit('@', 1)\n"
        "    m = torch.jit.load(p)\n"
        "    shape = [int(d) for d in shape.split(',')]\n"
        "    with torch.inference_mode():\n"
        "        y = m(torch.randn(shape))\n"
        "    assert torch.isfinite(y).all()\n"
        "assert not any(k == 'qconvert' or k.startswith('qconvert.') for k in sys.modules)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

"""Deployment bundles from one tiny conversion with --bundle --micro (the tiny Keras segmentation net, three int8
targets): manifest schema, checksums, static shapes in the bundled files, verify.py in an environment holding only
numpy and the runtime, verify.py's one-line failure on a flipped byte, the bundles section of the report (the TFLM
arena and TFLM-vs-LiteRT facts), `qconvert package`'s re-rendered report.html, and the one-line refusals of bad
input.

One conversion serves every test (module fixture). Its source is the Keras net as ONNX, so that the source
measurement runs in onnxruntime rather than in a child that imports TensorFlow; bundling reads the kept IR, whatever
the source was."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from qconvert.bundle import manifest as manifest_schema
from qconvert.bundle.package import package
from qconvert.errors import UsageError
from qconvert.report.format import number

TARGETS = ["tflite-uint8", "onnx-qdq", "torch-int8"]
SITE = Path(np.__file__).resolve().parent.parent
# What each runtime's import needs besides numpy (its own wheel and the declared dependencies it imports).
RUNTIME_FILES = {"tflite-uint8": ["ai_edge_litert"], "onnx-qdq": ["onnxruntime"],
                 "torch-int8": ["torch", "torchgen", "typing_extensions.py"]}


SAMPLES = 2


@pytest.fixture(scope="module")
def conversion(tiny_keras, tmp_path_factory):
    from qconvert.converters import load_source
    from qconvert.ir import save_ir
    from qconvert.pipeline.convert import convert
    from qconvert.pipeline.options import BundleOptions, CalibrationOptions, ConvertOptions, MeasureOptions

    folder = tmp_path_factory.mktemp("bundle")
    source = save_ir(load_source(str(tiny_keras["h5"])).ir, folder / "k2.onnx")
    calib = folder / "calib.npz"
    np.savez(calib, image=np.random.default_rng(0).uniform(0, 1, (32, 16, 16, 3)).astype(np.float32))
    options = ConvertOptions(calibration=CalibrationOptions(str(calib), 32),
                             measure=MeasureOptions(threads=1, runs=1, warmup=0, parity_samples=SAMPLES),
                             bundle=BundleOptions(True, (), micro=True))
    result = convert(str(source), TARGETS, options, out_dir=folder / "run")
    assert [r.status for r in result.rows] == ["ok"] * 4
    return result


@pytest.fixture(scope="module")
def run_dir(conversion) -> Path:
    return Path(conversion.out_dir)


@pytest.fixture(scope="module")
def bundles(run_dir) -> dict[str, Path]:
    return {target: run_dir / f"bundle-{target}" for target in TARGETS}


SITES = Path(tempfile.mkdtemp(prefix="qconvert-test-sites-"))  # removed at the module's end (teardown fixture)


@pytest.fixture(scope="module", autouse=True)
def _remove_sites():
    yield
    shutil.rmtree(SITES, ignore_errors=True)


def isolated_env(target: str) -> dict:
    """PYTHONPATH holding only numpy and the runtime (run with `python -s -S`: no site-packages at all)."""
    folder = SITES / f"site-{target}"
    if not folder.exists():
        folder.mkdir()
        for name in ["numpy", "numpy.libs", *RUNTIME_FILES[target]]:
            if (SITE / name).exists():
                (folder / name).symlink_to(SITE / name)
    return {"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"}


def run_verify(bundle: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-s", "-S", str(bundle / "verify.py")], capture_output=True, text=True,
                          env=isolated_env(target), cwd=bundle, timeout=300)


@pytest.mark.parametrize("target", TARGETS)
def test_manifest_follows_schema(bundles, target):
    strict = {"parse_constant": lambda name: pytest.fail(f"manifest.json holds {name}: not strict JSON")}
    document = json.loads((bundles[target] / "manifest.json").read_text(), **strict)
    assert manifest_schema.check(document) == []
    assert document["schema_version"] == manifest_schema.SCHEMA_VERSION
    assert document["target"]["name"] == target and document["target"]["runtime_version"]
    assert len(document["source"]["files"]) == 1 and len(document["source"]["files"][0]["sha256"]) == 64
    model = next(a for a in document["artifacts"] if a["role"] == "model")
    assert (bundles[target] / model["path"]).stat().st_size == model["size_bytes"]
    assert document["io"]["inputs"][0]["shape"][0] == 1
    assert float(document["parity"]["golden"]["sqnr_vs_ir_db"]) > 35  # the file computes the IR's int8 function
    assert float(document["parity"]["from_report"]["sqnr_db"]) > 20
    assert document["golden"]["samples"] == SAMPLES


@pytest.mark.parametrize("target", TARGETS)
def test_checksums_are_what_sha256sum_accepts(bundles, target):
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum on this machine")
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=bundles[target], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = {line.split("  ", 1)[1] for line in (bundles[target] / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(bundles[target]).as_posix() for p in bundles[target].rglob("*") if p.is_file()}
    assert listed == on_disk - {"SHA256SUMS"}


def test_bundled_files_are_static(bundles):
    import onnx

    from qconvert.bundle.static import dynamic_tensors

    model = onnx.load(str(next(bundles["onnx-qdq"].glob("*.onnx"))))
    for value in [*model.graph.input, *model.graph.output]:
        assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim), value.name
    tflite = next(bundles["tflite-uint8"].glob("*.tflite"))
    assert dynamic_tensors(tflite) == []
    assert json.loads((bundles["torch-int8"] / "manifest.json").read_text())["static_shapes"]["dynamic_kept"] == [
        "image[0]"]  # TorchScript keeps its batch a run-time value, and says so


def test_extras(bundles):
    onnx_files = {p.name for p in bundles["onnx-qdq"].iterdir()}
    assert {"k2.qdq.ort", "k2.qdq.required_operators.config"} <= onnx_files

    micro = json.loads((bundles["tflite-uint8"] / "manifest.json").read_text())["micro"]
    assert micro["arena_bytes"] > 0 and "AddConv2D" in micro["resolver"]
    assert micro["max_steps"] is not None and 0 <= micro["differing_pct"] <= 100
    source = next((bundles["tflite-uint8"] / "micro").glob("*_model_data.cc")).read_text()
    assert "alignas(16) const unsigned char" in source
    card = (bundles["tflite-uint8"] / "README.md").read_text()  # the model card, through the report's formatter
    assert f"arena {number(micro['arena_bytes'], ',d')} bytes (measured)" in card
    assert f"{number(micro['differing_pct'], '.2f')} % of {number(micro['elements'], ',d')} output" in card


@pytest.mark.parametrize("target", TARGETS)
def test_verify_passes_with_only_numpy_and_the_runtime(bundles, target):
    env = isolated_env(target)
    for absent in ("qconvert", "tensorflow", "onnx"):  # the isolation holds (run where verify.py runs)
        probe = subprocess.run([sys.executable, "-s", "-S", "-c", f"import {absent}"], env=env, capture_output=True,
                               cwd=bundles[target])
        assert probe.returncode != 0, absent
    result = run_verify(bundles[target], target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verify: OK")


@pytest.mark.parametrize("target", TARGETS)
def test_verify_names_a_tampered_file(bundles, target, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundles[target], copy)
    model = next(a["path"] for a in json.loads((copy / "manifest.json").read_text())["artifacts"]
                 if a["role"] == "model")
    data = bytearray((copy / model).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / model).write_bytes(bytes(data))
    result = run_verify(copy, target)
    lines = [line for line in result.stderr.splitlines() if line.startswith("verify:")]
    assert result.returncode == 1 and len(lines) == 1 and model in lines[0], result.stderr


def test_verify_names_a_changed_expected_output(bundles, tmp_path):
    """An output mismatch (here: the expected outputs edited and SHA256SUMS updated to match) is one line too."""
    from qconvert.bundle.checksums import write_sums

    copy = tmp_path / "bundle"
    shutil.copytree(bundles["tflite-uint8"], copy)
    with np.load(copy / "golden/expected.npz") as data:
        expected = {k: data[k].copy() for k in data.files}
    expected["output_0"].flat[0] = (int(expected["output_0"].flat[0]) + 3) % 256
    np.savez(copy / "golden/expected.npz", **expected)
    write_sums(copy)
    result = run_verify(copy, "tflite-uint8")
    assert result.returncode == 1 and "golden/expected.npz" in result.stderr and "steps" in result.stderr


def test_bad_input_is_one_line(run_dir, bundles, tmp_path):
    cases = [
        ((tmp_path / "nowhere", "onnx-qdq", tmp_path / "a"), "no such folder"),
        ((tmp_path, "onnx-qdq", tmp_path / "b"), "not a conversion's output folder"),
        ((run_dir, "onnx-fp32", tmp_path / "c"), "onnx-fp32 is not in"),
        ((run_dir, "no-such-target", tmp_path / "d"), "unknown target"),
        ((run_dir, "onnx-qdq", bundles["onnx-qdq"]), "is not an empty folder"),
    ]
    for (folder, target, out), message in cases:
        with pytest.raises(UsageError, match=message) as caught:
            package(folder, target, out)
        assert "\n" not in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_cli_package_refusal_exit_code(run_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "qconvert", "package", str(run_dir), "--target", "onnx-fp32",
                             "-o", str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "onnx-fp32 is not in" in result.stderr
    assert not (tmp_path / "x").exists()


def _section_rows(page: str, anchor: str) -> list[list[str]]:
    from tests.report.test_renderers import _html_rows

    found = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    return _html_rows(found.group(1)) if found else []


def test_report_shows_the_bundles(conversion, run_dir, bundles):
    """--bundle --micro: report.json, the tables and report.html hold each bundle, the TFLM arena and TFLM against
    LiteRT as the manifest has them, and verify.py's line from the finished bundle."""
    from qconvert.report.bundles import bundle_spec
    from qconvert.report.load import result_from_dict
    from qconvert.report.markdown import report_markdown
    from qconvert.report.render import to_markdown

    saved = json.loads((run_dir / "report.json").read_text())
    assert [b["target"] for b in saved["bundles"]] == TARGETS
    for record in saved["bundles"]:
        assert record["folder"] == f"bundle-{record['target']}" and record["verify"].startswith("OK: ")
        assert record["golden_samples"] == SAMPLES
    micro = json.loads((bundles["tflite-uint8"] / "manifest.json").read_text())["micro"]
    facts = saved["bundles"][0]["micro"]
    assert facts["arena_bytes"] == micro["arena_bytes"] > 0 and facts["max_steps"] == micro["max_steps"]
    assert facts["differing_pct"] == micro["differing_pct"] and facts["ops"] == len(micro["ops"])
    assert [b["micro"] for b in saved["bundles"][1:]] == [None, None]

    cells = bundle_spec(result_from_dict(saved).bundles).cells()
    assert cells == bundle_spec(conversion.bundles).cells()
    arena = f"{micro['arena_bytes']:,d}"
    assert arena in cells[0] and f"{micro['differing_pct']:.2f}" in cells[0] and str(micro["max_steps"]) in cells[0]
    assert _section_rows((run_dir / "report.html").read_text(), "bundles")[1:] == cells
    assert to_markdown(bundle_spec(conversion.bundles)) in report_markdown(conversion)
    # Each bundle's own page: the conversion's report with its own bundle's row; verify.py had not run yet.
    own = _section_rows((bundles["tflite-uint8"] / "report.html").read_text(), "bundles")
    assert len(own) == 2 and own[1][:-1] == cells[0][:-1] and own[1][-1] == "–"


def test_package_renders_the_report_with_its_bundle(run_dir, tmp_path):
    """`qconvert package` on a run folder: the bundle's report.html is the run's report (rendered again from
    report.json) with the bundle's section; the run's own files are left as they were."""
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    record = package(run_dir, "tflite-uint8", tmp_path / "b", ethos_u=False)
    assert record.target == "tflite-uint8" and record.verify.startswith("OK: ") and record.micro is None
    page = (tmp_path / "b" / "report.html").read_text()
    run_page = (run_dir / "report.html").read_text()
    assert _section_rows(page, "summary") == _section_rows(run_page, "summary")
    rows = _section_rows(page, "bundles")
    assert len(rows) == 2 and rows[1][:3] == ["tflite-uint8", "LiteRT", "b"]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert any(a["path"] == "report.html" and a["role"] == "report" for a in manifest["artifacts"])
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_api_takes_the_bundle_options(tmp_path):
    """qconvert.convert(bundle=..., micro=...) is --bundle [TARGETS] --micro: checked before the model is read."""
    import qconvert

    with pytest.raises(UsageError, match="--bundle onnx-qdq: not among the targets converted"):
        qconvert.convert(tmp_path / "absent.onnx", to="onnx-fp32", out_dir=tmp_path / "o", bundle=["onnx-qdq"])
    with pytest.raises(UsageError, match="micro=True is read by bundle"):
        qconvert.convert(tmp_path / "absent.onnx", to="onnx-fp32", out_dir=tmp_path / "o", micro=True)
    assert not (tmp_path / "o").exists()

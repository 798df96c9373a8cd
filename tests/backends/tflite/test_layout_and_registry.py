"""Layout bookkeeping, transpose counts, --io-layout, the registry and unsupported ops."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from qconvert.backends.tflite import layout
from qconvert.backends.tflite.registry import emits, supported_ops
from qconvert.cli import main
from qconvert.errors import UnsupportedOpError
from tests.backends.tflite.helpers import check, keras_style, model, weights


def test_perm_arithmetic():
    nhwc = layout.channels_last(4)
    assert nhwc == (0, 2, 3, 1)
    # A Keras graph's leading Transpose(0, 3, 1, 2) of a plainly held NHWC input: held NHWC after it.
    assert layout.after_transpose(layout.identity(4), (0, 3, 1, 2)) == nhwc
    assert layout.between(nhwc, layout.identity(4)) == (0, 3, 1, 2)
    assert layout.drop_axes(nhwc, [2, 3]) == (0, 1)  # GlobalAveragePool + Squeeze: plain [N, C]
    assert layout.insert_axes((0, 1), [2, 3]) == (0, 1, 2, 3)
    assert not layout.moves_data([None, 1, 1, 8], (0, 3, 1, 2))
    assert layout.moves_data([None, 2, 2, 8], (0, 3, 1, 2))


def classifier():
    """Conv -> Relu -> MaxPool -> Conv -> GlobalAveragePool -> Flatten -> Gemm, as PyTorch exports it."""
    body = """g (float[N, 3, 16, 16] x, float[8, 3, 3, 3] w1, float[8, 8, 3, 3] w2, float[10, 8] fc)
              => (float[N, 10] y) {
        c = Conv <pads = [1, 1, 1, 1]> (x, w1)
        r = Relu(c)
        p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
        d = Conv <pads = [1, 1, 1, 1], strides = [2, 2]> (p, w2)
        g = GlobalAveragePool(d)
        f = Flatten(g)
        y = Gemm <transB = 1> (f, fc)
    }"""
    return model(body, {"w1": weights(8, 3, 3, 3), "w2": weights(8, 8, 3, 3), "fc": weights(10, 8)})


def segmenter():
    body = """g (float[N, 3, 16, 16] x, float[4, 3, 3, 3] w, float[4, 8, 2, 2] up) => (float[N, 4, 16, 16] y) {
        c = Conv <pads = [1, 1, 1, 1]> (x, w)
        p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (c)
        u = ConvTranspose <strides = [2, 2]> (p, up)
        s = Concat <axis = 1> (u, c)
        y = Sigmoid(s)
    }"""
    body = body.replace("float[4, 8, 2, 2] up", "float[4, 4, 2, 2] up").replace("float[N, 4, 16, 16] y",
                                                                                "float[N, 8, 16, 16] y")
    return model(body, {"w": weights(4, 3, 3, 3), "up": weights(4, 4, 2, 2)})


def test_nchw_classifier_has_one_transpose_at_the_input(tmp_path):
    assert check(classifier(), tmp_path, atol=2e-5).count("TRANSPOSE") == 1


def test_nhwc_io_layout_removes_it(tmp_path):
    assert check(classifier(), tmp_path, atol=2e-5, io_layout="nhwc").count("TRANSPOSE") == 0


def test_nchw_segmenter_transposes_once_at_input_and_once_at_output(tmp_path):
    assert check(segmenter(), tmp_path, atol=2e-5).count("TRANSPOSE") == 2
    assert check(segmenter(), tmp_path, atol=2e-5, io_layout="nhwc").count("TRANSPOSE") == 0


def test_keras_style_graph_follows_its_nhwc_source_or_the_override(tmp_path):
    assert check(keras_style(segmenter()), tmp_path, atol=2e-5).count("TRANSPOSE") == 0
    assert check(keras_style(segmenter()), tmp_path, atol=2e-5, io_layout="nchw").count("TRANSPOSE") == 2


def test_facts_name_the_artifact_layouts(tmp_path):
    from qconvert.backends.targets import EmitOptions, all_targets

    target = all_targets()["tflite-fp32"]
    facts = target.emit(segmenter(), tmp_path / "m.tflite", EmitOptions(io_layout="nhwc"))
    assert facts["inputs"] == [{"name": "x", "signature": "x", "perm": [0, 2, 3, 1], "layout": "NHWC",
                                "dtype": "float32", "ir_dtype": "float32"}]
    assert facts["outputs"][0]["layout"] == "NHWC" and facts["outputs"][0]["name"] == "y"
    json.dumps(facts)


def test_unsupported_op_names_op_node_and_target(tmp_path):
    body = """g (float[N] x) => (float[M] y) { y = Unique(x) }"""
    source = model(body)
    next(iter(source.graph)).name = "the_unique"
    with pytest.raises(UnsupportedOpError) as error:
        check(source, tmp_path)
    assert (error.value.op, error.value.node, error.value.target) == ("Unique", "the_unique", "tflite-fp32")
    assert "qconvert ops" in str(error.value)


def test_unsupported_attribute_is_named(tmp_path):
    body = """g (float[N, 4, 5, 5] x) => (float[N, 4, 5, 5] y) {
        y = Resize <mode = "cubic", coordinate_transformation_mode = "tf_crop_and_resize"> (x, , s) }"""
    with pytest.raises(UnsupportedOpError, match="Resize .tf_crop_and_resize."):
        check(model(body.replace("(x, , s)", "(x, , s)").replace("float[N, 4, 5, 5] x)",
                                                                  "float[N, 4, 5, 5] x, float[4] s)"),
                    {"s": np.array([1, 1, 2, 2], np.float32)}), tmp_path)


def test_registering_an_op_twice_fails():
    supported_ops()
    with pytest.raises(RuntimeError, match="Conv registered twice"):
        emits("Conv")(lambda ctx: None)


def test_ops_command_prints_coverage():
    result = CliRunner().invoke(main, ["ops", "--json"])
    assert result.exit_code == 0, result.output
    coverage = json.loads(result.stdout)
    assert coverage["onnx-fp32"] == "all"
    assert {"Conv", "ConvTranspose", "Resize", "Gelu", "Erf"} <= set(coverage["tflite-fp16"])
    table = CliRunner().invoke(main, ["ops"]).stdout.splitlines()
    assert table[0].split()[0] == "op" and {"onnx-fp32", "tflite-dynamic"} <= set(table[0].split())
    assert any(line.split()[0] == "Conv" and "yes" in line for line in table)

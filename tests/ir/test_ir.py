import numpy as np


from qconvert.ir import get_meta, input_layouts, load_ir, save_ir, set_meta
from qconvert.ir.inputs import random_feeds, specs_from_ir
from tests.passes.helpers import parse


def test_metadata_survives_a_file_round_trip(tmp_path):
    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 3, 8, 8] x) => (float[N, 3, 8, 8] y) { y = Relu(x) }
    """)
    set_meta(model, "source_framework", "keras")
    set_meta(model, "input_layouts", {"x": "NHWC"})
    path = save_ir(model, tmp_path / "m.onnx")
    again = load_ir(path)
    assert get_meta(again, "source_framework") == "keras"
    assert input_layouts(again) == {"x": "NHWC"}
    assert again.metadata_props["qconvert.source_framework"] == '"keras"'  # plain JSON, readable in Netron


def test_integer_inputs_get_the_embedding_table_range():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (int64[N, 16] ids) => (float[N, 16, 4] y) <float[50, 4] table = {0.0}> {
            y = Gather(table, ids)
        }
    """)
    (spec,) = specs_from_ir(model)
    assert spec.int_range == (0, 50) and spec.shape == (None, 16)
    feeds = random_feeds([spec], batch=64, seed=0)
    assert feeds["ids"].shape == (64, 16) and feeds["ids"].max() < 50 and feeds["ids"].dtype == np.int64


def test_static_batch_is_kept():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2, 3] x) => (float[2, 3] y) { y = Relu(x) }
    """)
    assert random_feeds(specs_from_ir(model), batch=16, seed=0)["x"].shape == (2, 3)


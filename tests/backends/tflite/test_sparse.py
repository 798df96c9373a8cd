"""TFLite's sparse weight encoding: a pruned model's file is smaller and computes the same, the facts give
both sizes and which was kept; an unpruned model is not tried; a larger or unrunnable sparse file is not kept."""

from __future__ import annotations

import numpy as np

from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from qconvert.backends.tflite.sparse import smaller_encoding, zero_share
from qconvert.passes.prune_magnitude import prune_global
from tests.backends.tflite.helpers import model, op_names, run_tflite, weights
from tests.passes.helpers import random_inputs, run

BODY = """g (float[1, 64] x, float[64, 128] w1, float[128] b1, float[128, 32] w2) => (float[1, 32] y) {
    h = Gemm (x, w1, b1)
    r = Relu (h)
    y = MatMul (r, w2)
}"""


def mlp():
    return model(BODY, {"w1": weights(64, 128), "b1": weights(128, seed=2), "w2": weights(128, 32, seed=3)})


def test_a_pruned_model_is_written_sparse_smaller_and_computes_the_same(tmp_path):
    pruned = mlp()
    prune_global(pruned, 0.8)
    assert abs(zero_share(pruned) - 0.8) < 1e-3
    flatbuffer, facts = convert(pruned, "fp32", EmitOptions(), "tflite-fp32")
    sparse = facts["quantization"]["sparse_encoding"]
    assert sparse["kept"] == "sparse" and len(flatbuffer) == sparse["sparse_bytes"]
    assert sparse["sparse_bytes"] < 0.5 * sparse["dense_bytes"]  # 80% zeros: float32 values plus their indices
    assert sparse["sparse_tensors"] == 2 and "DENSIFY" in op_names(flatbuffer)
    assert sparse["densify_ops"] + len(sparse["sparse_kernels"]) >= 1
    assert 0.2 < sparse["latency_ratio"] < 5  # measured and said; the same function either way
    feeds = random_inputs(pruned)
    np.testing.assert_allclose(run_tflite(flatbuffer, facts, feeds, tmp_path)[0], run(pruned, feeds)[0], atol=1e-5)


def test_an_unpruned_model_is_not_tried():
    flatbuffer, facts = convert(mlp(), "fp32", EmitOptions(), "tflite-fp32")
    assert "quantization" not in facts and "DENSIFY" not in op_names(flatbuffer)


def test_the_dense_file_is_kept_where_the_sparse_one_is_larger_or_does_not_run():
    pruned = mlp()
    prune_global(pruned, 0.5)
    dense, _ = convert(pruned, "fp32", EmitOptions(), "tflite-fp32")
    kept, facts = smaller_encoding(pruned, lambda sparse: dense + b"\0" * 16 if sparse else dense)
    assert kept is dense and facts["kept"] == "dense" and facts["sparse_bytes"] == len(dense) + 16
    kept, facts = smaller_encoding(pruned, lambda sparse: b"not a model" if sparse else dense)
    assert kept is dense and facts["kept"] == "dense" and facts["sparse_refused"]

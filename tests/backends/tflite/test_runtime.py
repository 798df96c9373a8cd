"""The LiteRT session: new batch sizes, artifacts opened without facts, and no CUDA path."""

import numpy as np
import pytest

from qconvert.backends.session import DeviceUnavailable
from qconvert.backends.targets import EmitOptions
from qconvert.backends.tflite.emit import convert
from qconvert.backends.tflite.runtime import open_session
from tests.backends.tflite.helpers import model, weights
from tests.passes.helpers import run

BODY = """g (float[N, 3, 8, 8] x, float[4, 3, 3, 3] w) => (float[N, 4, 8, 8] y) {
    c = Conv <pads = [1, 1, 1, 1]> (x, w)
    y = Relu(c)
}"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    source = model(BODY, {"w": weights(4, 3, 3, 3)})
    flatbuffer, facts = convert(source, "fp32", EmitOptions(io_layout="nhwc"), "tflite-fp32")
    path = tmp_path_factory.mktemp("runtime") / "m.tflite"
    path.write_bytes(flatbuffer)
    return source, str(path), facts


def test_batch_sizes_change_between_calls(artifact):
    source, path, facts = artifact
    session = open_session(path, facts, "cpu", 1)
    for batch in (2, 5, 1):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        (got,) = session.finish(session.run(session.prepare({"x": x})))
        np.testing.assert_allclose(got, run(source, {"x": x})[0], atol=1e-5, rtol=0)


def test_without_facts_the_artifact_runs_as_it_is(artifact):
    _, path, _ = artifact
    session = open_session(path, {}, "cpu", 1)
    x = np.zeros((2, 8, 8, 3), np.float32)  # the artifact's own NHWC input
    assert session.finish(session.run(session.prepare({"x": x})))[0].shape == (2, 8, 8, 4)


def test_cuda_is_unavailable(artifact):
    _, path, facts = artifact
    with pytest.raises(DeviceUnavailable, match="LiteRT"):
        open_session(path, facts, "cuda", 1)

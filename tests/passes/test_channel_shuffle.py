"""ChannelShuffleToGather: ShuffleNet's Reshape -> Transpose -> Reshape becomes one channel Gather."""

from __future__ import annotations

import pytest

from qconvert.passes.channel_shuffle import ChannelShuffleToGather
from tests.passes.helpers import check_pass_keeps_io, ops, parse

SHUFFLE = """<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 6, 4, 4] x) => (float[N, 6, 4, 4] y) {{
  s = Constant<value=int64[5] {{0, 2, 3, 4, 4}}>()
  m = Constant<value=int64[4] {{-1, 6, 4, 4}}>()
  r = Reshape(x, s)
  t = Transpose<perm={perm}>(r)
  y = Reshape(t, m){extra}
}}"""


def test_shuffle_becomes_a_gather():
    model = parse(SHUFFLE.format(perm="[0, 2, 1, 3, 4]", extra=""))
    result = check_pass_keeps_io(model, ChannelShuffleToGather(), atol=0)
    assert result.modified
    assert [op for op in ops(result.model) if op != "Constant"] == ["Gather"]


def test_shuffle_with_the_batch_read_at_run_time_becomes_a_gather():
    """torch.export writes view(batch, g, C/g, H, W) with the batch taken from the input's shape."""
    model = parse("""<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 6, 4, 4] x) => (float[N, 6, 4, 4] y) {
  n = Shape<start=0, end=1>(x)
  rest = Constant<value=int64[4] {2, 3, 4, 4}>()
  back = Constant<value=int64[3] {6, 4, 4}>()
  s = Concat<axis=0>(n, rest)
  m = Concat<axis=0>(n, back)
  r = Reshape(x, s)
  t = Transpose<perm=[0, 2, 1, 3, 4]>(r)
  y = Reshape(t, m)
}""")
    from onnx_ir.passes.common import ShapeInferencePass

    model = ShapeInferencePass()(model).model
    result = check_pass_keeps_io(model, ChannelShuffleToGather(), atol=0)
    assert result.modified and "Transpose" not in ops(result.model) and "Gather" in ops(result.model)


@pytest.mark.parametrize(("perm", "extra"), [
    ("[0, 1, 2, 4, 3]", ""),  # not a swap of the channel factors
    ("[0, 2, 1, 3, 4]", "\n  z = Relu(t)"),  # the transposed value has another consumer
])
def test_does_not_fire(perm, extra):
    body = SHUFFLE.format(perm=perm, extra=extra)
    if "z = Relu" in body:
        body = body.replace("(float[N, 6, 4, 4] y)", "(float[N, 6, 4, 4] y, float[N, 3, 2, 4, 4] z)")
    assert not ChannelShuffleToGather()(parse(body)).modified


def test_tflite_shuffle_needs_no_transpose_inside(tmp_path):
    from tests.backends.tflite.helpers import check, model

    body = SHUFFLE.format(perm="[0, 2, 1, 3, 4]", extra="").split("\n", 1)[1]
    names = check(model(body.replace("g (float[N, 6, 4, 4] x)", "g (float[N, 6, 4, 4] x)")), tmp_path)
    assert names.count("TRANSPOSE") <= 2  # at most the NCHW input's and output's


def test_allowzero_without_a_zero_in_the_shape_still_fires():
    """torch's exporter marks every view allowzero=1; with no 0 in the shape it means nothing."""
    body = SHUFFLE.format(perm="[0, 2, 1, 3, 4]", extra="").replace("Reshape(", "Reshape<allowzero=1>(")
    body = body.replace("{0, 2, 3, 4, 4}", "{-1, 2, 3, 4, 4}")
    result = check_pass_keeps_io(parse(body), ChannelShuffleToGather(), atol=0)
    assert result.modified and "Transpose" not in ops(result.model)

"""InferShapes: dims that shape arithmetic on the batch hides from node-by-node inference come back."""

from __future__ import annotations

import onnx_ir as ir

from qconvert.passes.infer_shapes import InferShapes, merge_shapes, reshape_wildcard
from qconvert.passes.pipelines import cleanup
from tests.passes.helpers import check_pass_keeps_io, parse

# A YOLOv8 head: each map flattened from the batch, concatenated, split, and the DFL's Reshape -> Conv.
HEAD = """<ir_version: 8, opset_import: ["" : 17]>
g (float[batch,64,4,4] a, float[batch,64,2,2] b) => (float[batch,1,4,20] y) {
  zero = Constant<value=int64[1] {0}>()
  sa = Shape(a)
  n = Gather<axis=0>(sa, zero)
  rest = Constant<value=int64[2] {64, -1}>()
  shape = Concat<axis=0>(n, rest)
  fa = Reshape(a, shape)
  fb = Reshape(b, shape)
  cat = Concat<axis=2>(fa, fb)
  dfl = Constant<value=int64[3] {4, 16, -1}>()
  shape4 = Concat<axis=0>(n, dfl)
  r = Reshape(cat, shape4)
  t = Transpose<perm=[0,2,1,3]>(r)
  s = Softmax<axis=1>(t)
  w = Constant<value=float[1,16,1,1] {0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}>()
  y = Conv(s, w)
}"""


def _shape(model: ir.Model, name: str) -> list:
    value = ir.convenience.create_value_mapping(model.graph)[name]
    return [d if isinstance(d, int) else (d.value if isinstance(d, ir.SymbolicDim) else d) for d in value.shape]


def test_dims_behind_a_reshape_to_a_runtime_shape_are_recovered():
    model = cleanup(parse(HEAD))
    assert _shape(model, "fa") == ["batch", 64, 16]
    assert _shape(model, "cat") == ["batch", 64, 20]
    # The channels a Conv needs (16), through the -1 that ONNX leaves unknown next to the batch.
    assert _shape(model, "s") == ["batch", 16, 4, 20]


def test_pass_keeps_outputs_and_only_adds_knowledge():
    result = check_pass_keeps_io(parse(HEAD), InferShapes(), atol=0)
    assert result.modified
    assert merge_shapes(ir.Shape([1, "batch", None]), ir.Shape([2, 3, "unk__4"])) == ir.Shape([1, 3, None])
    assert merge_shapes(ir.Shape([None, None]), ir.Shape(["unk__1", 7])) == ir.Shape([None, 7])
    assert merge_shapes(ir.Shape([None]), ir.Shape([3, 3])) == ir.Shape([None])  # rank disagrees


def test_reshape_wildcard_cancels_the_same_named_dims_only():
    assert reshape_wildcard(ir.Shape(["batch", 144, 40, 40]), ir.Shape(["batch", 144, None])) == 1600
    assert reshape_wildcard(ir.Shape(["batch", 144, 40]), ir.Shape(["seq", 144, None])) is None
    assert reshape_wildcard(ir.Shape(["batch", 10]), ir.Shape(["batch", 3, None])) is None  # not a divisor
    assert reshape_wildcard(ir.Shape(["batch", 10]), ir.Shape([None, None])) is None

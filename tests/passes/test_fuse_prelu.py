"""FusePRelu: Keras's PReLU, exported as Relu(x) + (-alpha) * Relu(-x), becomes one PRelu."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.passes.fuse_prelu import FusePRelu
from tests.passes.helpers import check_pass_keeps_io, ops, parse

KERAS_PRELU = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4,5,5] x) => (float[N,4,5,5] y) {{
  c = Constant<value=float[4,1,1] {{-0.25, -0.5, 0.1, -2.0}}>()
  p = Relu(x)
  n = Neg(x)
  r = Relu(n)
  m = {mul}
  y = {add}
}}"""


def _model(mul: str = "Mul(r, c)", add: str = "Add(p, m)") -> ir.Model:
    model = parse(KERAS_PRELU.format(mul=mul, add=add))
    from qconvert.passes.fold_constants import FoldConstants

    return FoldConstants()(model).model


def test_keras_prelu_becomes_one_prelu_with_the_same_outputs():
    for mul, add in (("Mul(r, c)", "Add(p, m)"), ("Mul(c, r)", "Add(m, p)")):
        result = check_pass_keeps_io(_model(mul, add), FusePRelu(), atol=1e-6)
        assert result.modified
        assert [op for op in ops(result.model) if op != "Constant"] == ["PRelu"]
        prelu = next(node for node in result.model.graph if node.op_type == "PRelu")
        np.testing.assert_allclose(prelu.inputs[1].const_value.numpy().ravel(), [0.25, 0.5, -0.1, 2.0])


def test_not_fused_when_a_branch_is_used_elsewhere():
    text = KERAS_PRELU.replace("(float[N,4,5,5] y)", "(float[N,4,5,5] y, float[N,4,5,5] r)")
    model = parse(text.format(mul="Mul(r, c)", add="Add(p, m)"))
    result = FusePRelu()(model)
    assert not result.modified and "PRelu" not in ops(result.model)


def test_not_fused_when_the_two_relus_read_different_tensors():
    text = KERAS_PRELU.replace("n = Neg(x)", "x2 = Sigmoid(x)\n  n = Neg(x2)")
    result = FusePRelu()(parse(text.format(mul="Mul(r, c)", add="Add(p, m)")))
    assert not result.modified

"""Tiny CNN blocks as modern CNNs contain them (onnx text), for placement and integer-kernel tests."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tests.quant.graphs import with_weights

RESIDUAL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8,8,8] x, float[8,8,3,3] W1, float[8] B1, float[8,8,3,3] W2, float[8] B2, float[16,8,1,1] W3)
  => (float[N,16,8,8] y) {
  c1 = Conv <pads=[1,1,1,1]> (x, W1, B1)
  r1 = Relu (c1)
  c2 = Conv <pads=[1,1,1,1]> (r1, W2, B2)
  s = Add (c2, x)
  r = Relu (s)
  c3 = Conv (r, W3)
  t = Add (c3, c3)
  y = Identity (t)
}
"""
# The residual Add without a Relu too (MobileNetV2's), and Add(c3, c3): two activations, one tensor.


def residual() -> ir.Model:
    return with_weights(RESIDUAL, W1=(8, 8, 3, 3), B1=(8,), W2=(8, 8, 3, 3), B2=(8,), W3=(16, 8, 1, 1))


SQUEEZE_EXCITE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,16,8,8] x, float[16,16,1,1] W0, float[4,16,1,1] W1, float[4] B1, float[16,4,1,1] W2, float[16] B2)
  => (float[N,16,8,8] y) {
  c = Conv (x, W0)
  sig = Sigmoid (c)
  a = Mul (c, sig)
  p = GlobalAveragePool (a)
  f1 = Conv (p, W1, B1)
  r1 = Relu (f1)
  f2 = Conv (r1, W2, B2)
  g = Sigmoid (f2)
  y = Mul (a, g)
}
"""
# SiLU (x·sigmoid(x)) then squeeze-excitation as EfficientNet has them.


def squeeze_excite() -> ir.Model:
    return with_weights(SQUEEZE_EXCITE, W0=(16, 16, 1, 1), W1=(4, 16, 1, 1), B1=(4,), W2=(16, 4, 1, 1), B2=(16,))


HARDSWISH = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,16,8,8] x, float[16,16,1,1] W0, float[16,1,3,3] Wd, float[16] Bd, float[8,16] Wf, float[8] Bf)
  => (float[N,8] y) {
  c = Conv (x, W0)
  h = HardSigmoid <alpha=0.16666667, beta=0.5> (c)
  a = Mul (c, h)
  d = Conv <group=16, pads=[1,1,1,1]> (a, Wd, Bd)
  e = HardSwish (d)
  p = GlobalAveragePool (e)
  f = Flatten (p)
  y = Gemm <transB=1> (f, Wf, Bf)
}
"""
# MobileNetV3: HardSwish written as x·HardSigmoid(x), a depthwise Conv, the HardSwish op, the head.


def hardswish() -> ir.Model:
    return with_weights(HARDSWISH, W0=(16, 16, 1, 1), Wd=(16, 1, 3, 3), Bd=(16,), Wf=(8, 16), Bf=(8,))


DEPTHWISE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,16,8,8] x, float[16,1,3,3] Wd, float[16] Bd, float[32,16,1,1] Wp, float[32] Bp) => (float[N,32,8,8] y) {
  d = Conv <group=16, pads=[1,1,1,1]> (x, Wd, Bd)
  lo = Constant <value = float {0.0}> ()
  hi = Constant <value = float {6.0}> ()
  r = Clip (d, lo, hi)
  y = Conv (r, Wp, Bp)
}
"""


def depthwise() -> ir.Model:
    return with_weights(DEPTHWISE, Wd=(16, 1, 3, 3), Bd=(16,), Wp=(32, 16, 1, 1), Bp=(32,))


def random_feeds(model: ir.Model, samples: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([samples, *v.shape[1:]]).astype(np.float32) for v in model.graph.inputs}

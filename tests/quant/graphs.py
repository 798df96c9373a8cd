"""Tiny graphs for quantization tests: onnx text with some graph inputs turned into weights."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tests.passes.helpers import parse


def with_weights(text: str, seed: int = 0, **shapes: tuple[int, ...]) -> ir.Model:
    """Parse `text` and make the named graph inputs initializers with random values of `shapes`."""
    model = parse(text)
    rng = np.random.default_rng(seed)
    for name, shape in shapes.items():
        value = next(v for v in model.graph.inputs if v.name == name)
        model.graph.inputs.remove(value)
        value.const_value = ir.tensor(rng.standard_normal(shape).astype(np.float32) * 0.5, name=name)
        model.graph.register_initializer(value)
    return model


CONV_RELU_POOL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,8,8] x, float[4,3,3,3] W, float[4] B) => (float[N,4,4,4] y) {
  c = Conv <pads=[1,1,1,1]> (x, W, B)
  r = Relu(c)
  y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (r)
}
"""


def conv_relu_pool() -> ir.Model:
    return with_weights(CONV_RELU_POOL, W=(4, 3, 3, 3), B=(4,))

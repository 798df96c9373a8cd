"""Mixed precision in the plan: a layer kept float keeps its unit float up to the next int8 layer."""

from qconvert.quant.plan import layer_name, plan_quantization
from tests.quant.graphs import with_weights

# conv1 -> Relu -> conv2 -> Relu -> GlobalAveragePool -> Flatten -> Gemm: conv2 kept float.
NET = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3,8,8] x, float[4,3,3,3] W1, float[4,4,3,3] W2, float[4,5] W3) => (float[N,5] y) {
  a = Conv <pads=[1,1,1,1]> (x, W1)
  ra = Relu(a)
  b = Conv <pads=[1,1,1,1]> (ra, W2)
  rb = Relu(b)
  p = GlobalAveragePool(rb)
  f = Flatten(p)
  y = MatMul(f, W3)
}
"""


def test_a_unit_kept_float_is_not_quantized_through_the_pool_after_it():
    model = with_weights(NET, W1=(4, 3, 3, 3), W2=(4, 4, 3, 3), W3=(4, 5))
    conv2 = next(node for node in model.graph if node.outputs[0].name == "b")
    full = {t.name for t in plan_quantization(model.graph).tensors}
    assert {"rb", "p", "f"} <= full  # all int8: one shared scale through the pool
    mixed = plan_quantization(model.graph, exclude={layer_name(conv2)})
    quantized = {t.name for t in mixed.tensors}
    # The float unit's output stays float, so the pool runs float; int8 starts after it (p, f) and conv2's
    # input from conv1 stays int8.
    assert "rb" not in quantized
    assert {"p", "f", "ra"} <= quantized
    assert layer_name(conv2) not in {layer_name(layer.node) for layer in mixed.layers}

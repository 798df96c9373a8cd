import numpy as np

from qconvert.passes import FoldConstants, RemoveDeadNodes
from tests.passes.helpers import check_pass_keeps_io, ops, parse, random_inputs, run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'

# Flatten written the way exporters write it: the target shape is computed from Shape(x).
SHAPE_CHAIN = """
    g (float[{batch}, 3, 4, 4] x) => (float[{batch}, 48] y) {{
        s = Shape(x)
        i0 = Constant<value = int64[1] {{0}}>()
        i1 = Constant<value = int64[1] {{1}}>()
        d0 = Gather<axis=0>(s, i0)
        d1 = Gather<axis=0>(s, i1)
        m = Constant<value = int64[1] {{16}}>()
        c = Mul(d1, m)
        shp = Concat<axis=0>(d0, c)
        y = Reshape(x, shp)
    }}"""


def _fold_and_clean(model, pass_=None):
    result = check_pass_keeps_io(model, pass_ or FoldConstants())
    RemoveDeadNodes()(model)
    return result


def test_folds_constant_subgraph_into_initializer():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) <float[4] w = {1, 2, 3, 4}> {
            two = Constant<value = float[1] {2}>()
            w2 = Mul(w, two)
            w3 = Neg(w2)
            y = Add(x, w3)
        }""")
    assert ops(model) == ["Constant", "Mul", "Neg", "Add"]
    assert _fold_and_clean(model).modified
    assert ops(model) == ["Add"]
    folded = model.graph.node(0).inputs[1]
    np.testing.assert_array_equal(folded.const_value.numpy(), [-2, -4, -6, -8])


def test_static_shape_chain_folds_completely():
    model = parse(HEADER + SHAPE_CHAIN.format(batch=1))
    assert _fold_and_clean(model).modified
    assert ops(model) == ["Reshape"]
    np.testing.assert_array_equal(model.graph.node(0).inputs[1].const_value.numpy(), [1, 48])


def test_shape_chain_keeps_dynamic_batch():
    model = parse(HEADER + SHAPE_CHAIN.format(batch="N"))
    assert _fold_and_clean(model).modified
    # The static part (3 * 16) folded; the batch still comes from Shape(x).
    assert ops(model) == ["Shape", "Gather", "Concat", "Reshape"]
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(run(model, {"x": x})[0], x.reshape(5, 48))


def test_does_not_fold_dim_traced_with_batch_1():
    # value_info says r is [1, 3, 4, 4] (as traced), but the input batch is dynamic.
    model = parse(HEADER + """
        g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) <float[1] one = {1}, float[1, 3, 4, 4] r> {
            r = Relu(x)
            s = Shape(r)
            y = Expand(one, s)
        }""")
    _fold_and_clean(model)
    assert ops(model) == ["Relu", "Shape", "Expand"]
    x = np.zeros((3, 3, 4, 4), np.float32)
    assert run(model, {"x": x})[0].shape == (3, 3, 4, 4)


def test_does_not_fold_a_dynamic_dim():
    model = parse(HEADER + """
        g (float[N, 4] x) => (int64[1] y) {
            s = Shape(x)
            i = Constant<value = int64[1] {0}>()
            y = Gather<axis=0>(s, i)
        }""")
    _fold_and_clean(model)
    assert ops(model) == ["Shape", "Gather"]


def test_size_limit_keeps_large_results_unfolded():
    model = parse(HEADER + """
        g (float[N, 100] x) => (float[N, 100] y) <float[1] one = {1}> {
            shape = Constant<value = int64[1] {100}>()
            big = Expand(one, shape)
            y = Add(x, big)
        }""")
    _fold_and_clean(model, FoldConstants(output_size_limit=10))
    assert ops(model) == ["Expand", "Add"]
    assert max(v.const_value.size for v in model.graph.initializers.values()) == 1


def test_nothing_to_fold():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) {
            r = Relu(x)
            y = Neg(r)
        }""")
    assert not check_pass_keeps_io(model, FoldConstants()).modified
    assert ops(model) == ["Relu", "Neg"]
    assert random_inputs(model)["x"].shape == (2, 4)

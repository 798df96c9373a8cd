from qconvert.passes import RemoveDeadNodes
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def test_removes_dead_nodes_and_unused_initializers():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) <float[4] b = {1, 2, 3, 4}, float[2] unused = {0, 0}> {
            y = Add(x, b)
            dead = Neg(x)
            dead2 = Relu(dead)
        }""")
    assert ops(model) == ["Add", "Neg", "Relu"]
    assert check_pass_keeps_io(model, RemoveDeadNodes()).modified
    assert ops(model) == ["Add"]
    assert list(model.graph.initializers) == ["b"]


def test_drops_unused_optional_outputs():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) {
            y, mask = Dropout(x)
        }""")
    assert check_pass_keeps_io(model, RemoveDeadNodes()).modified
    assert len(model.graph.node(0).outputs) == 1


def test_keeps_used_nodes_and_unused_graph_inputs():
    model = parse(HEADER + """
        g (float[N, 4] x, float[N, 4] unused) => (float[N, 4] y) {
            r = Relu(x)
            y = Neg(r)
        }""")
    assert not check_pass_keeps_io(model, RemoveDeadNodes()).modified
    assert ops(model) == ["Relu", "Neg"]
    assert [v.name for v in model.graph.inputs] == ["x", "unused"]

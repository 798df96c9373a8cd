from qconvert.passes import RemoveIdentity
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def test_removes_inner_identity():
    model = parse(HEADER + """
        g (float[N, 4] x, float[4] b) => (float[N, 4] y) {
            r = Relu(x)
            i = Identity(r)
            y = Add(i, b)
        }""")
    assert check_pass_keeps_io(model, RemoveIdentity()).modified
    assert ops(model) == ["Relu", "Add"]


def test_identity_feeding_graph_output_renames_its_input():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) {
            r = Relu(x)
            y = Identity(r)
        }""")
    assert check_pass_keeps_io(model, RemoveIdentity()).modified
    assert ops(model) == ["Relu"]
    assert model.graph.node(0).outputs[0].name == "y"


def test_keeps_identity_from_graph_input_to_output():
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] y) {
            y = Identity(x)
        }""")
    assert not check_pass_keeps_io(model, RemoveIdentity()).modified
    assert ops(model) == ["Identity"]


def test_keeps_identity_between_two_graph_outputs():
    # Removing it would leave one value for two output names.
    model = parse(HEADER + """
        g (float[N, 4] x) => (float[N, 4] a, float[N, 4] b) {
            a = Relu(x)
            b = Identity(a)
        }""")
    assert not check_pass_keeps_io(model, RemoveIdentity()).modified
    assert ops(model) == ["Relu", "Identity"]


def test_keeps_identity_of_outer_value_as_subgraph_output():
    model = parse(HEADER + """
        g (bool c, float[4] x) => (float[4] y) {
            r = Relu(x)
            y = If(c) <
                then_branch = t () => (float[4] ty) { ty = Identity(r) },
                else_branch = e () => (float[4] ey) { ey = Neg(r) }
            >
        }""")
    assert not check_pass_keeps_io(model, RemoveIdentity()).modified
    then_branch = model.graph.node(1).attributes["then_branch"].as_graph()
    assert [n.op_type for n in then_branch] == ["Identity"]

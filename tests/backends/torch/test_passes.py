"""The torch backend's IR passes (qconvert.backends.torch.passes): op lists before and after, the emitted
program of the prepared IR against onnxruntime on the original, and each case where a pass must not fire.
Their output is a torch form (a MatMul with a bias input), so the prepared IR is checked through the
emitter; where it is still ONNX (no bias) onnxruntime runs it too."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
import torch

from qconvert.backends.torch.passes import FuseMatMulBias, MergeSharedInputMatMuls, prepare_for_torch
from qconvert.backends.torch.program import build
from tests.passes.helpers import ops, parse, random_inputs, run

RNG = np.random.default_rng(0)


def const(name: str, *shape: int) -> str:
    values = ", ".join(f"{v:.6f}" for v in RNG.uniform(-1, 1, shape).ravel())
    return f"float[{','.join(map(str, shape))}] {name} = {{{values}}}"


def model(body: str, inputs: str, outputs: str, inits: list[str], opset: int = 17) -> ir.Model:
    return parse(f'<ir_version: 8, opset_import: ["" : {opset}]>\n'
                 f"g ({inputs}) => ({outputs}) <{', '.join(inits)}> {{ {body} }}")


def emitted(prepared: ir.Model, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """The float program of the prepared IR (the emitter as torch-fp32 runs it): its outputs, and the
    functions it calls in order (F.linear is "linear")."""
    module, _, inputs, _ = build(prepared, mode="float", target="torch-fp32")
    with torch.no_grad():
        results = module(*(torch.from_numpy(feeds[p.name]) for p in inputs))
    results = results if isinstance(results, tuple) else (results,)
    calls = [getattr(n.target, "__name__", str(n.target)) for n in module.graph.nodes if n.op == "call_function"]
    return [r.numpy() for r in results], calls


def check(original: ir.Model, prepared: ir.Model, atol: float = 1e-5) -> list[str]:
    """The prepared IR's program computes what onnxruntime computes on the original; its calls."""
    feeds = random_inputs(original)
    actual, calls = emitted(prepared, feeds)
    for want, got in zip(run(original, feeds), actual):
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    return calls


BIAS_ADD = model("t = MatMul(x, W)\n y = Add(t, b)", "float[N, 5, 4] x", "float[N, 5, 3] y",
                 [const("W", 4, 3), const("b", 3)])


@pytest.mark.parametrize("add", ["Add(t, b)", "Add(b, t)"])
def test_bias_add_becomes_the_matmuls_third_input_and_one_linear(add):
    original = model(f"t = MatMul(x, W)\n y = {add}", "float[N, 5, 4] x", "float[N, 5, 3] y",
                     [const("W", 4, 3), const("b", 3)])
    prepared = original.clone()
    result = FuseMatMulBias()(prepared)
    assert result.modified and ops(prepared) == ["MatMul"]
    matmul = prepared.graph.node(0)
    assert [v.name for v in matmul.inputs] == ["x", "W", "b"] and matmul.outputs[0].name == "y"
    assert check(original, prepared) == ["linear"]


@pytest.mark.parametrize("body, outputs, inits", [
    ("t = MatMul(x, W)\n y = Add(t, x2)", "float[N, 5, 3] y", [const("W", 4, 3)]),  # bias at run time
    ("t = MatMul(x, W)\n y = Add(t, b)", "float[N, 5, 3] y", [const("W", 4, 3), const("b", 5, 3)]),  # not [N]
    ("t = MatMul(x, W)\n y = Add(t, b)", "float[N, 5, 3] y, float[N, 5, 3] t", [const("W", 4, 3), const("b", 3)]),
    ("t = MatMul(x, W)\n y = Add(t, b)\n z = Relu(t)", "float[N, 5, 3] y, float[N, 5, 3] z",
     [const("W", 4, 3), const("b", 3)]),  # t read twice
    ("t = MatMul(x, W)\n y = Mul(t, b)", "float[N, 5, 3] y", [const("W", 4, 3), const("b", 3)]),
    ("t = MatMul(x, W)\n y = Add(t, b)", "float[N, 5, 3] y", [const("W", 1, 4, 3), const("b", 3)]),  # 3-D weight
])
def test_bias_add_is_left_alone(body, outputs, inits):
    inputs = "float[N, 5, 4] x, float[N, 5, 3] x2" if "x2" in body else "float[N, 5, 4] x"
    original = model(body, inputs, outputs, inits)
    prepared = original.clone()
    before = ops(prepared)
    assert not FuseMatMulBias()(prepared).modified and ops(prepared) == before
    check(original, prepared)


QKV = ("q = MatMul(x, Wq)\n qb = Add(q, bq)\n k = MatMul(x, Wk)\n v = MatMul(x, Wv)\n vb = Add(bv, v)\n"
       "o = MatMul(x2, Wo)\n s = Add(qb, k)")
QKV_INITS = [const("Wq", 4, 3), const("bq", 3), const("Wk", 4, 3), const("Wv", 4, 2), const("bv", 2),
             const("Wo", 4, 3)]


@pytest.mark.parametrize("opset", [17, 11])  # the Split's sizes: an input from opset 13, an attribute before
def test_matmuls_of_one_input_become_one_matmul_and_a_split(opset):
    original = model(QKV, "float[N, 6, 4] x, float[N, 6, 4] x2", "float[N, 6, 3] s, float[N, 6, 2] vb, "
                     "float[N, 6, 3] o", QKV_INITS, opset)
    prepared = prepare_for_torch(original, "dynamic")
    assert ops(original) == ["MatMul", "Add", "MatMul", "MatMul", "Add", "MatMul", "Add"]  # left as it was
    assert ops(prepared) == ["MatMul", "Split", "MatMul", "Add"]
    merged, split = prepared.graph.node(0), prepared.graph.node(1)
    assert merged.name == original.graph.node(0).name and merged.inputs[1].const_value.shape.dims == (4, 8)
    np.testing.assert_array_equal(merged.inputs[2].const_value.numpy()[3:6], np.zeros(3, np.float32))  # k: none
    assert [v.name for v in split.outputs] == ["qb", "k", "vb"] and split.attributes.get_int("axis") == -1
    assert {"Wq", "bq", "Wk", "Wv", "bv"}.isdisjoint(prepared.graph.initializers)  # read by nothing now
    assert check(original, prepared) == ["linear", "split", "getitem", "getitem", "getitem", "linear", "add"]


def test_merged_matmuls_without_biases_stay_onnx():
    original = model("q = MatMul(x, Wq)\n k = MatMul(x, Wk)\n y = Add(q, k)", "float[N, 6, 4] x",
                     "float[N, 6, 3] y", [const("Wq", 4, 3), const("Wk", 4, 3)])
    prepared = original.clone()
    assert MergeSharedInputMatMuls()(prepared).modified and ops(prepared) == ["MatMul", "Split", "Add"]
    feeds = random_inputs(original)
    np.testing.assert_allclose(run(prepared, feeds)[0], run(original, feeds)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("body, inputs, inits", [
    ("q = MatMul(x, Wq)\n y = Relu(q)", "", [const("Wq", 4, 3)]),  # alone
    ("q = MatMul(x, Wq)\n k = MatMul(x2, Wk)\n y = Add(q, k)", ", float[N, 6, 4] x2",
     [const("Wq", 4, 3), const("Wk", 4, 3)]),  # other activations
    ("q = MatMul(x, Wq)\n k = MatMul(x, w)\n y = Add(q, k)", ", float[4, 3] w", [const("Wq", 4, 3)]),  # weight fed
    ("q = MatMul(x, Wq)\n k = MatMul(Wk, x)\n y = MatMul(k, Wq)", "", [const("Wq", 4, 3), const("Wk", 6, 6)]),
])
def test_matmuls_that_share_no_activation_by_constant_weights_are_left_alone(body, inputs, inits):
    original = model(body, "float[N, 6, 4] x" + inputs, "float[N, 6, 3] y", inits)
    prepared = original.clone()
    before = ops(prepared)
    assert not MergeSharedInputMatMuls()(prepared).modified and ops(prepared) == before


def test_preparation_leaves_the_callers_ir_and_float_mode_does_not_merge():
    original = model(QKV, "float[N, 6, 4] x, float[N, 6, 4] x2", "float[N, 6, 3] s, float[N, 6, 2] vb, "
                     "float[N, 6, 3] o", QKV_INITS)
    before = ops(original)
    prepared = prepare_for_torch(original, "float")
    assert ops(original) == before and ops(prepared) == ["MatMul", "MatMul", "MatMul", "MatMul", "Add"]
    assert check(original, prepared) == ["linear", "linear", "linear", "linear", "add"]


def test_training_program_keeps_one_parameter_per_initializer():
    """Training builds from the unprepared IR: the MatMul reads its weight Parameter and the Add its bias."""
    from qconvert.train.program import trainable_program

    program = trainable_program(BIAS_ADD.clone())
    assert sorted(program.parameters.values()) == ["W", "b"]
    calls = [getattr(n.target, "__name__", "") for n in program.module.graph.nodes if n.op == "call_function"]
    assert calls == ["matmul", "add"]

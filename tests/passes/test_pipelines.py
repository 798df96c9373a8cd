import numpy as np
import onnx_ir as ir
import pytest

from qconvert.errors import PassError
from qconvert.ir import get_meta, set_meta
from qconvert.passes import CLEANUP, FoldConstants, RemoveIdentity, cleanup, run_pipeline
from tests.passes.helpers import check_pass_keeps_io, ops, parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def _conv_bn_model() -> ir.Model:
    rng = np.random.default_rng(0)

    def floats(n, low=-1.0):
        return ", ".join(f"{v:.5f}" for v in rng.uniform(low, 1.0, n))

    # Identity on the weight, Conv+BN, a dead node, flatten via Shape arithmetic.
    model = parse(HEADER + f"""
        g (float[N, 2, 5, 5] x) => (float[N, 75] out)
          <float[3, 2, 3, 3] W = {{{floats(54)}}}, float[3] gamma = {{{floats(3, 0.5)}}},
           float[3] beta = {{{floats(3)}}}, float[3] mean = {{{floats(3)}}},
           float[3] var = {{{floats(3, 0.5)}}}, float[7] unused = {{{floats(7)}}}> {{
            wi = Identity(W)
            y = Conv<pads = [1, 1, 1, 1]>(x, wi)
            z = BatchNormalization(y, gamma, beta, mean, var)
            r = Relu(z)
            dead = Neg(r)
            s = Shape(r)
            zero = Constant<value = int64[1] {{0}}>()
            n = Gather<axis=0>(s, zero)
            hundred = Constant<value = int64[1] {{100}}>()
            twenty_five = Constant<value = int64[1] {{25}}>()
            features = Sub(hundred, twenty_five)
            shp = Concat<axis=0>(n, features)
            flat = Reshape(r, shp)
            out = Identity(flat)
        }}""")
    set_meta(model, "input_layouts", {"x": "NCHW"})
    return model


def test_cleanup_pipeline():
    model = _conv_bn_model()
    result = check_pass_keeps_io(model, lambda m: ir.passes.PassResult(cleanup(m), True))
    assert ops(result.model) == ["Conv", "Relu", "Shape", "Gather", "Concat", "Reshape"]
    assert set(result.model.graph.initializers) == {"W", "W_bn_bias", "zero", "features"}
    assert get_meta(result.model, "input_layouts") == {"x": "NCHW"}


class Boom(ir.passes.InPlacePass):
    def call(self, model):
        raise ValueError("boom")


def test_run_pipeline_names_failing_pass_and_those_before():
    model = _conv_bn_model()
    with pytest.raises(PassError) as error:
        run_pipeline(model, [RemoveIdentity(), FoldConstants(), Boom()], "test")
    assert str(error.value) == (
        "test: pass Boom failed after [RemoveIdentity, FoldConstants]: ValueError: boom"
    )
    assert isinstance(error.value.__cause__, ValueError)


class RenameOutput(ir.passes.InPlacePass):
    def call(self, model):
        model.graph.outputs[0].name = "renamed"
        return ir.passes.PassResult(model, modified=True)


def test_run_pipeline_rejects_a_pass_that_renames_outputs():
    with pytest.raises(PassError, match="pass RenameOutput failed after \\[\\]: it renamed"):
        run_pipeline(_conv_bn_model(), [RenameOutput()], "test")


class DropMetadata(ir.passes.InPlacePass):
    def call(self, model):
        model.metadata_props.clear()
        return ir.passes.PassResult(model, modified=True)


def test_run_pipeline_rejects_a_pass_that_drops_metadata():
    with pytest.raises(PassError, match="pass DropMetadata failed after \\[RemoveIdentity\\]"):
        run_pipeline(_conv_bn_model(), [RemoveIdentity(), DropMetadata()], "test")


def test_cleanup_order():
    names = [type(p).__name__ for p in CLEANUP]
    assert names == [
        "StripDebugMetadata",
        "RemoveIdentity",
        "FoldConstants",
        "FoldBatchNorm",
        "FuseGelu",
        "FusePRelu",
        "GuardPadBeforePool",
        "RemoveDeadNodes",
        "TopologicalSortPass",
        "InferShapes",
    ]


def test_int8_preparation_order():
    from qconvert.passes.pipelines import INT8_PREPARATION

    assert [type(p).__name__ for p in INT8_PREPARATION] == [
        "UnfoldConvTranspose",
        "FoldChannelAffine",
        "ChannelAffineToConv",
        "RemoveDeadNodes",
        "TopologicalSortPass",
    ]

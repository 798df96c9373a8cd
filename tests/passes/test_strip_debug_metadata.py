from qconvert.passes.strip_debug_metadata import StripDebugMetadata
from tests.passes.helpers import check_pass_keeps_io, parse


def _model():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }
    """)
    model.metadata_props["qconvert.source_framework"] = '"torch"'
    return model


def test_strips_exporter_debug_keys_and_keeps_model_metadata():
    model = _model()
    node = next(iter(model.graph))
    node.metadata_props["pkg.torch.onnx.stack_trace"] = "File model.py, line 3"
    node.metadata_props["namespace"] = "TinyNet/relu"
    node.metadata_props["user.note"] = "kept"
    result = check_pass_keeps_io(model, StripDebugMetadata())
    assert result.modified
    assert dict(node.metadata_props) == {"user.note": "kept"}
    assert result.model.metadata_props["qconvert.source_framework"] == '"torch"'


def test_nothing_to_strip():
    assert not check_pass_keeps_io(_model(), StripDebugMetadata()).modified

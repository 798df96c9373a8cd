import pytest

from qconvert.converters.input_spec import match_specs_to_inputs, parse_input_shape, parse_input_shapes
from qconvert.errors import UsageError


def test_plain_named_and_typed_shapes():
    assert parse_input_shape("1,3,32,32").shape == (1, 3, 32, 32)
    spec = parse_input_shape("input_ids=1,128:int64")
    assert (spec.name, spec.shape, spec.dtype) == ("input_ids", (1, 128), "int64")


@pytest.mark.parametrize("text", ["1,3,,32", "x=", "1,3:float99", "0,3"])
def test_bad_shapes_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_input_shape(text)


def test_several_inputs_need_names():
    with pytest.raises(UsageError, match="need names"):
        parse_input_shapes(["1,3", "a=1,3"])


def test_missing_shape_names_the_inputs():
    with pytest.raises(UsageError, match="--input-shape a=1,3,32,32 b=1,3,32,32"):
        match_specs_to_inputs([], ["a", "b"], "m.pt")


def test_unknown_input_name():
    with pytest.raises(UsageError, match="do not match the inputs"):
        match_specs_to_inputs(parse_input_shapes(["y=1,3"]), ["x"], "m.pt")

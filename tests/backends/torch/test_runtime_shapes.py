"""Shapes computed at run time from the dynamic batch (Shape -> Gather -> Concat -> Reshape/Expand/Slice,
Range, ConstantOfShape, Tile, Split, Pad, Resize sizes): one artifact, run at two batch sizes against
onnxruntime. Also the static exact Resize path (constant scales that torch's interpolate cannot do)."""

from __future__ import annotations

import numpy as np
import pytest

from qconvert.backends.targets import all_targets
from qconvert.backends.torch.runtime import open_session
from tests.passes.helpers import parse, run

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'

CASES = {
    # flatten everything but the batch, read from the tensor at run time
    "reshape_from_shape": ("float[N, 3, 4, 4] x", "float[N, 48] y", """
        s = Shape (x)
        n = Gather <axis=0> (s, zero)
        nn = Unsqueeze (n, zero)
        shp = Concat <axis=0> (nn, m1)
        y = Reshape (x, shp)""", "int64 zero = {0}, int64[1] m1 = {-1}"),
    # a (N, 5) mask built from Range and the batch size
    "range_expand": ("float[N, 5] x", "float[N, 5] y", """
        s = Shape (x)
        n = Gather <axis=0> (s, zero)
        r = Range (zero, five, one)
        rf = Cast <to=1> (r)
        nn = Unsqueeze (n, zero)
        full = Concat <axis=0> (nn, five1)
        e = Expand (rf, full)
        y = Mul (x, e)""", "int64 zero = {0}, int64 five = {5}, int64 one = {1}, int64[1] five1 = {5}"),
    "constant_of_shape_tile": ("float[N, 2] x", "float[N, 6] y", """
        s = Shape (x)
        c = ConstantOfShape <value = float[1] {2.5}> (s)
        t = Tile (c, reps)
        xt = Tile (x, reps)
        y = Add (t, xt)""", "int64[2] reps = {1, 3}"),
    # the second half of the batch, and a Split whose sizes depend on the batch
    "slice_and_split_by_batch": ("float[N, 4] x", "float[M, 4] y, float[K, 4] z", """
        s = Shape (x)
        n = Gather <axis=0> (s, zero1)
        h = Div (n, two)
        y = Slice (x, h, big, zero1)
        rest = Sub (n, h)
        sizes = Concat <axis=0> (h, rest)
        a, z = Split <axis=0> (x, sizes)""", "int64[1] zero1 = {0}, int64[1] two = {2}, int64[1] big = {1000}"),
    "pad_reflect_runtime_pads": ("float[N, 2, 5] x", "float[N, 2, 9] y", """
        s = Shape (x)
        last = Gather <axis=0> (s, two)
        p = Sub (last, three)
        pads = Concat <axis=0> (z3, p, z3b, p)
        y = Pad <mode="reflect"> (x, pads)""",
        "int64[1] two = {2}, int64[1] three = {3}, int64[2] z3 = {0, 0}, int64[2] z3b = {0, 0}"),
    # upsample to the size of another input's spatial dims (an FPN's top-down path)
    "resize_to_other_size": ("float[N, 2, 3, 3] x, float[N, 2, 6, 5] ref", "float[N, 2, 6, 5] y", """
        s = Shape (ref)
        hw = Slice (s, two, four)
        nc = Shape <start=0, end=2> (x)
        sizes = Concat <axis=0> (nc, hw)
        y = Resize <mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"> (x, , , sizes)""",
        "int64[1] two = {2}, int64[1] four = {4}"),
    "resize_linear_runtime_sizes_asymmetric": ("float[N, 2, 3, 3] x, float[N, 2, 6, 5] ref", "float[N, 2, 6, 5] y", """
        s = Shape (ref)
        y = Resize <mode="linear", coordinate_transformation_mode="asymmetric"> (x, , , s)""", ""),
    "topk_half_width": ("float[N, 8] x", "float[N, 4] v, int64[N, 4] i", """
        s = Shape (x)
        w = Gather (s, one)
        k = Div (w, two)
        v, i = TopK <axis=1> (x, k)""", "int64[1] one = {1}, int64[1] two = {2}"),
}

STATIC_RESIZE = {
    "cubic_asymmetric": '<mode="cubic", coordinate_transformation_mode="asymmetric">',
    "linear_half_pixel_symmetric": '<mode="linear", coordinate_transformation_mode="half_pixel_symmetric">',
    "nearest_half_pixel_round_prefer_floor": '<mode="nearest">',
    "linear_antialias_downsample": '<mode="linear", antialias=1>',
}


def _graph(inputs: str, outputs: str, body: str, inits: str) -> str:
    return f"{HEADER}\ng ({inputs}) => ({outputs}) {'<' + inits + '>' if inits else ''} {{ {body} }}"


def _feeds(model, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.inputs:
        shape = [d if isinstance(d, int) else batch for d in value.shape]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _emit(model, tmp_path):
    path = tmp_path / "model.pt"
    facts = all_targets()["torch-fp32"].emit(model, path)
    return open_session(str(path), facts, "cpu", 1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_runtime_shape_matches_onnxruntime_at_two_batch_sizes(case, tmp_path):
    model = parse(_graph(*CASES[case]))
    session = _emit(model, tmp_path)  # one artifact for both batch sizes
    for batch in (2, 6):
        feeds = _feeds(model, batch, seed=batch)
        expected = run(model, feeds)
        actual = session.finish(session.run(session.prepare(feeds)))
        for e, a in zip(expected, actual):
            assert a.shape == e.shape, (batch, a.shape, e.shape)
            np.testing.assert_allclose(a, e, atol=1e-5, rtol=1e-5)


def test_constant_shapes_stay_static_code(tmp_path):
    """A Shape whose input dims are all known is folded: no run-time shape op in the program."""
    from qconvert.backends.torch.emit import build_module

    model = parse(_graph("float[2, 3, 4] x", "float[6, 4] y", "s = Shape (x)\n t = Slice (s, a, b)\n"
                         " shp = Concat <axis=0> (m1, t)\n y = Reshape (x, shp)",
                         "int64[1] a = {2}, int64[1] b = {3}, int64[1] m1 = {-1}"))
    module, _ = build_module(model, "float", "torch-fp32")
    assert "shape_as_tensor" not in module.code and "reshape_to" not in module.code
    assert "reshape(x, [-1, 4])" in module.code.replace("x.reshape([-1, 4])", "reshape(x, [-1, 4])")


@pytest.mark.parametrize("case", sorted(STATIC_RESIZE))
def test_static_resize_modes_torch_cannot_interpolate(case, tmp_path):
    scales = "{1, 1, 0.5, 0.75}" if "downsample" in case else "{1, 1, 1.5, 2.5}"
    model = parse(_graph("float[N, 2, 6, 4] x", "float[N, 2, A, B] y",
                         f"y = Resize {STATIC_RESIZE[case]} (x, , sc)", f"float[4] sc = {scales}"))
    session = _emit(model, tmp_path)
    feeds = _feeds(model, 3, seed=0)
    np.testing.assert_allclose(session.finish(session.run(session.prepare(feeds)))[0], run(model, feeds)[0],
                               atol=1e-5, rtol=1e-5)

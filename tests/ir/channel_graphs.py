"""Tiny graphs for the channel-group analysis and channel pruning: one per way channels travel."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.passes.infer_shapes import InferShapes
from tests.passes.helpers import parse

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def build(signature: str, weights: dict[str, tuple], body: list[str], seed: int = 0) -> ir.Model:
    """A model from `signature`, `body` lines and random float weights {name: shape} (int64 arrays given
    as ("int64", values), given floats as ("float", values), positive ones as
    ("positive", shape)), with every intermediate shape inferred."""
    rng = np.random.default_rng(seed)
    declared = []
    for name, spec in weights.items():
        if spec and spec[0] == "positive":
            values = rng.uniform(0.5, 1.5, spec[1])
            declared.append(f"float[{','.join(map(str, spec[1]))}] {name} = "
                            f"{{{', '.join(f'{v:.6f}' for v in values.ravel())}}}")
        elif spec and spec[0] == "float":
            values = np.asarray(spec[1], dtype=np.float32)
            declared.append(f"float[{values.size}] {name} = {{{', '.join(map(str, values))}}}")
        elif spec and spec[0] == "int64":
            values = np.asarray(spec[1], dtype=np.int64)
            declared.append(f"int64[{values.size}] {name} = {{{', '.join(map(str, values))}}}")
        else:
            values = rng.uniform(-1, 1, spec)
            declared.append(f"float[{','.join(map(str, spec))}] {name} = "
                            f"{{{', '.join(f'{v:.6f}' for v in values.ravel())}}}")
    text = f"{HEADER}{signature}\n<{', '.join(declared)}>\n{{\n" + "\n".join(f"  {line}" for line in body) + "\n}"
    model = parse(text)
    InferShapes()(model)
    return model


def residual() -> ir.Model:
    """Two convs added (a residual): one group; the classifier conv's output is the graph's."""
    return build("g (float[N, 3, 8, 8] x) => (float[N, 4, 8, 8] out)",
                 {"Wa": (16, 3, 3, 3), "Ba": (16,), "Wb": (16, 16, 3, 3), "Bb": (16,), "Wc": (4, 16, 1, 1)},
                 ["a = Conv<pads = [1, 1, 1, 1]>(x, Wa, Ba)", "ra = Relu(a)",
                  "b = Conv<pads = [1, 1, 1, 1]>(ra, Wb, Bb)", "s = Add(ra, b)", "rs = Relu(s)",
                  "out = Conv(rs, Wc)"])


def concat() -> ir.Model:
    """Two convs concatenated on the channels, a per-channel BatchNormalization after the Concat."""
    return build("g (float[N, 3, 8, 8] x) => (float[N, 5, 8, 8] out)",
                 {"Wa": (6, 3, 3, 3), "Wb": (10, 3, 1, 1), "Bb": (10,), "g": (16,), "be": (16,), "m": (16,),
                  "v": ("positive", (16,)), "Wc": (5, 16, 3, 3)},
                 ["a = Conv<pads = [1, 1, 1, 1]>(x, Wa)", "b = Conv(x, Wb, Bb)", "c = Concat<axis = 1>(a, b)",
                  "n = BatchNormalization(c, g, be, m, v)", "r = Relu(n)",
                  "out = Conv<pads = [1, 1, 1, 1]>(r, Wc)"])


def depthwise() -> ir.Model:
    """A pointwise conv, a depthwise conv (per-channel), a per-channel Mul, a conv reading them."""
    return build("g (float[N, 3, 8, 8] x) => (float[N, 4, 8, 8] out)",
                 {"Wa": (12, 3, 1, 1), "Wd": (12, 1, 3, 3), "Bd": (12,), "s": (1, 12, 1, 1), "Wc": (4, 12, 1, 1)},
                 ["a = Conv(x, Wa)", "d = Conv<group = 12, pads = [1, 1, 1, 1]>(a, Wd, Bd)", "m = Mul(d, s)",
                  "r = Relu(m)", "out = Conv(r, Wc)"])


def flatten_gemm() -> ir.Model:
    """A conv flattened into a Gemm: each channel is H·W = 9 of the Gemm's rows."""
    return build("g (float[N, 3, 5, 5] x) => (float[N, 5] out)",
                 {"Wa": (8, 3, 3, 3), "Ba": (8,), "Wg": (6, 72), "Bg": (6,), "Wo": (6, 5)},
                 ["a = Conv(x, Wa, Ba)", "r = Relu(a)", "f = Flatten(r)", "h = Gemm<transB = 1>(f, Wg, Bg)",
                  "hr = Relu(h)", "out = MatMul(hr, Wo)"])


def split() -> ir.Model:
    """A conv's channels split in two, each piece read by its own conv, the results added."""
    return build("g (float[N, 3, 6, 6] x) => (float[N, 4, 6, 6] out)",
                 {"Wa": (12, 3, 1, 1), "sizes": ("int64", [4, 8]), "Wp": (4, 4, 1, 1), "Wq": (4, 8, 1, 1)},
                 ["a = Conv(x, Wa)", "p, q = Split<axis = 1>(a, sizes)", "cp = Conv(p, Wp)", "cq = Conv(q, Wq)",
                  "out = Add(cp, cq)"])


def barrier() -> ir.Model:
    """A channel shuffle spelled as Reshape/Transpose/Reshape: the Reshape splits the channel axis."""
    return build("g (float[N, 3, 4, 4] x) => (float[N, 2, 4, 4] out)",
                 {"Wa": (8, 3, 1, 1), "split_shape": ("int64", [0, 2, 4, 4, 4]),
                  "merge_shape": ("int64", [0, 8, 4, 4]), "Wc": (2, 8, 1, 1)},
                 ["a = Conv(x, Wa)", "s = Reshape(a, split_shape)", "t = Transpose<perm = [0, 2, 1, 3, 4]>(s)",
                  "m = Reshape(t, merge_shape)", "out = Conv(m, Wc)"])


def slice_gather() -> ir.Model:
    """Channels 2..6 sliced out and channels [7, 0, 3, 3] gathered from one conv, each read by a conv; a
    nearest-neighbour Resize before them that leaves the channels alone."""
    return build("g (float[N, 3, 4, 4] x) => (float[N, 2, 8, 8] out)",
                 {"Wa": (8, 3, 1, 1), "starts": ("int64", [2]), "ends": ("int64", [7]), "axes": ("int64", [1]),
                  "idx": ("int64", [7, 0, 3, 3]), "scales": ("float", [1, 1, 2, 2]), "Ws": (2, 5, 1, 1),
                  "Wg": (2, 4, 1, 1)},
                 ["a = Conv(x, Wa)", "r = Resize<mode = \"nearest\">(a, , scales)",
                  "s = Slice(r, starts, ends, axes)", "g = Gather<axis = 1>(r, idx)", "cs = Conv(s, Ws)",
                  "cg = Conv(g, Wg)", "out = Add(cs, cg)"])


def unknown_ops() -> ir.Model:
    """A grouped conv (channels tied in blocks) and an LRN (mixes neighbouring channels) after two convs."""
    return build("g (float[N, 3, 4, 4] x) => (float[N, 2, 4, 4] out, float[N, 2, 4, 4] out2)",
                 {"Wa": (8, 3, 1, 1), "Wb": (8, 4, 1, 1), "Wc": (2, 8, 1, 1), "Wd": (6, 3, 1, 1), "We": (2, 6, 1, 1)},
                 ["a = Conv(x, Wa)", "b = Conv<group = 2>(a, Wb)", "out = Conv(b, Wc)",
                  "d = Conv(x, Wd)", "l = LRN<size = 3>(d)", "out2 = Conv(l, We)"])


def runtime_reshape(scaled: bool = False) -> ir.Model:
    """Keras's UpSampling2D as tf2onnx writes it: rows repeated by Unsqueeze/Tile and merged by a Reshape
    whose shape is computed from Shape(a) at run time (NHWC inside, the channel count its last entry).
    `scaled`: the shape vector goes through a Mul first, which the analysis does not follow."""
    shape = "scaled = Mul(picked, ones)" if scaled else "scaled = Cast<to = 7>(picked)"
    return build("g (float[N, 3, 4, 4] x) => (float[N, 2, 8, 4] out)",
                 {"Wa": (8, 3, 1, 1), "order": ("int64", [0, 2, 3, 1]), "ones": ("int64", [1, 1, 1, 1]),
                  "axis2": ("int64", [2]), "reps": ("int64", [1, 1, 2, 1, 1]), "rows": ("int64", [8]),
                  "zero": ("int64", [0]), "one": ("int64", [1]), "two": ("int64", [2]), "four": ("int64", [4]),
                  "Wc": (2, 8, 1, 1)},
                 ["a = Conv(x, Wa)", "t = Transpose<perm = [0, 2, 3, 1]>(a)", "u = Unsqueeze(t, axis2)",
                  "tiled = Tile(u, reps)", "sh = Shape(a)", "picked = Gather(sh, order)", shape,
                  "batch = Slice(scaled, zero, one)", "tail = Slice(scaled, two, four)",
                  "target = Concat<axis = 0>(batch, rows, tail)", "r = Reshape(tiled, target)",
                  "back = Transpose<perm = [0, 3, 1, 2]>(r)", "out = Conv(back, Wc)"])


def untracked_partner() -> ir.Model:
    """A conv summed with a per-channel constant and with a graph input of as many channels; the conv
    before it is prunable."""
    return build("g (float[N, 3, 4, 4] x, float[N, 8, 4, 4] y) => (float[N, 2, 4, 4] out)",
                 {"Wb": (6, 3, 1, 1), "Wa": (8, 6, 1, 1), "k": (1, 8, 1, 1), "Wc": (2, 8, 1, 1)},
                 ["b = Conv(x, Wb)", "a = Conv(b, Wa)", "s = Sum(a, k, y)", "out = Conv(s, Wc)"])


def runtime_resize() -> ir.Model:
    """torch's F.interpolate(size=...) as exported: Resize sizes = Concat(Shape(a)[0:2], [8, 8])."""
    return build("g (float[N, 3, 4, 4] x) => (float[N, 2, 8, 8] out)",
                 {"Wa": (8, 3, 1, 1), "zero": ("int64", [0]), "two": ("int64", [2]), "hw": ("int64", [8, 8]),
                  "Wc": (2, 8, 1, 1)},
                 ["a = Conv(x, Wa)", "sh = Shape(a)", "head = Slice(sh, zero, two)", "sizes = Concat<axis = 0>(head, hw)",
                  "r = Resize<mode = \"nearest\">(a, , , sizes)", "out = Conv(r, Wc)"])

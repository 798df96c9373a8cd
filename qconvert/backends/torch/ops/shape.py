"""Shape ops: Reshape, Flatten, Transpose, Concat, Squeeze/Unsqueeze, Gather, Slice, Constant, Identity,
DepthToSpace/SpaceToDepth.

Reshape, Flatten, Transpose and Concat work on quantized tensors too: an int8 program passes a held
quantized tensor through them (qconvert/backends/torch/ops/quantized.py decides when).
"""

from __future__ import annotations

import operator

import torch

from qconvert.backends.torch.ops.common import ints
from qconvert.backends.torch.registry import emits


def _x(b, node, index=0):
    held = b.quant(node.inputs[index])
    return held.node if held else b.input(node, index)


@emits("Constant")
def constant(b, node):
    b.consts[node.outputs[0].name] = node.attributes["value"].value.numpy()
    return None


@emits("Identity")
def identity(b, node):
    held = b.values.get(node.inputs[0].name)
    return held if held is not None else b.input(node, 0)


@emits("Reshape")
def reshape(b, node):
    shape = b.const(node.inputs[1])
    if shape is None:
        raise ValueError(f"Reshape {node.name}: the shape must be a constant")
    x = _x(b, node)
    target = []
    for axis, size in enumerate(ints(shape)):
        if size == 0 and not b.attr(node, "allowzero", 0):
            target.append(b.method("size", x, axis))
        else:
            target.append(size)
    return b.method("reshape", x, target)


@emits("Flatten")
def flatten(b, node):
    axis = int(b.attr(node, "axis", 1))
    x = _x(b, node)
    if axis == 1:
        return b.call(torch.flatten, x, 1)
    if axis == 0:
        return b.method("reshape", x, [1, -1])
    return b.call(torch.flatten, b.call(torch.flatten, x, axis), 0, axis - 1)


@emits("Transpose")
def transpose(b, node):
    perm = b.attr(node, "perm")
    if perm is None:
        perm = list(reversed(range(b.rank(node.inputs[0]))))
    return b.method("permute", _x(b, node), list(perm))


@emits("Concat")
def concat(b, node):
    return b.call(torch.cat, [b.input(node, i) for i in range(len(node.inputs))], int(b.attr(node, "axis")))


@emits("Squeeze")
def squeeze(b, node):
    axes = b.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else b.attr(node, "axes")
    x = _x(b, node)
    if axes is None:
        return b.call(torch.squeeze, x)
    return b.call(torch.squeeze, x, ints(axes))


@emits("Unsqueeze")
def unsqueeze(b, node):
    axes = b.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else b.attr(node, "axes")
    x = _x(b, node)
    rank = (b.rank(node.inputs[0]) or 0) + len(ints(axes))
    for axis in sorted(a + rank if a < 0 else a for a in ints(axes)):
        x = b.call(torch.unsqueeze, x, axis)
    return x


@emits("Gather")
def gather(b, node):
    axis = int(b.attr(node, "axis", 0))
    data, indices = b.const(node.inputs[0]), b.const(node.inputs[1])
    if data is not None and axis == 0 and indices is None:  # an embedding lookup
        return b.call(torch.nn.functional.embedding, b.input(node, 1), b.input(node, 0))
    if indices is not None and indices.ndim == 0:
        return b.call(torch.select, b.input(node, 0), axis, int(indices))
    if indices is not None and indices.ndim != 1:
        raise ValueError(f"Gather {node.name}: indices of rank {indices.ndim} are not supported")
    return b.call(torch.index_select, b.input(node, 0), axis, b.input(node, 1))


@emits("Slice")
def slice_(b, node):
    starts, ends = b.const(node.inputs[1]), b.const(node.inputs[2])
    axes = b.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
    steps = b.const(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
    if starts is None or ends is None:
        raise ValueError(f"Slice {node.name}: starts and ends must be constants")
    axes = ints(axes) if axes is not None else list(range(len(ints(starts))))
    steps = ints(steps) if steps is not None else [1] * len(axes)
    x = b.input(node, 0)
    for start, end, axis, step in zip(ints(starts), ints(ends), axes, steps):
        if step != 1:
            raise ValueError(f"Slice {node.name}: steps other than 1 are not supported")
        if axis < 0:
            axis += b.rank(node.inputs[0])
        index = (slice(None),) * axis + (slice(start, end if end < 2**62 else None),)
        x = b.call(operator.getitem, x, index)
    return x


def _chw(b, node, x) -> list:
    """Channels, height and width: the IR's static sizes where known, else read from the tensor at run time."""
    shape = node.inputs[0].shape
    if shape is not None and len(shape) != 4:
        raise ValueError(f"{node.op_type} {node.name}: needs a 4-D input, got rank {len(shape)}")
    dims = list(shape.dims[1:]) if shape is not None else [None] * 3
    return [d if isinstance(d, int) else b.method("size", x, axis + 1) for axis, d in enumerate(dims)]


def _times(b, a, k: int):
    return a * k if isinstance(a, int) else b.call(operator.mul, a, k)


def _divided(b, a, k: int):
    return a // k if isinstance(a, int) else b.call(operator.floordiv, a, k)


@emits("DepthToSpace")
def depth_to_space(b, node):
    x = _x(b, node)
    channels, height, width = _chw(b, node, x)
    block = int(b.attr(node, "blocksize"))
    depth = _divided(b, channels, block * block)
    mode = b.attr(node, "mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "DCR":  # channel index (i * block + j) * depth + c
        split, perm = [-1, block, block, depth, height, width], [0, 3, 4, 1, 5, 2]
    else:  # CRD: channel index c * block * block + i * block + j
        split, perm = [-1, depth, block, block, height, width], [0, 1, 4, 2, 5, 3]
    x = b.method("permute", b.method("reshape", x, split), perm)
    return b.method("reshape", x, [-1, depth, _times(b, height, block), _times(b, width, block)])


@emits("SpaceToDepth")
def space_to_depth(b, node):
    x = _x(b, node)
    channels, height, width = _chw(b, node, x)
    block = int(b.attr(node, "blocksize"))
    x = b.method("reshape", x, [-1, channels, _divided(b, height, block), block, _divided(b, width, block), block])
    x = b.method("permute", x, [0, 3, 5, 1, 2, 4])
    return b.method("reshape", x, [-1, _times(b, channels, block * block), _divided(b, height, block),
                                   _divided(b, width, block)])

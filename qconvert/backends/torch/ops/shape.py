"""Shape ops: Reshape, Flatten, Transpose, Concat, Squeeze/Unsqueeze, Gather, Slice, Constant, Identity,
Shape, Size, Expand, Tile, Range, ConstantOfShape, Split, EyeLike, Trilu, DepthToSpace/SpaceToDepth.

A shape computed at run time is an int64 tensor in the program (Shape -> torch._shape_as_tensor), so
Gather/Concat/Slice/arithmetic on it are ordinary tensor ops; ops that take a shape read it with the
TorchScript helpers below. Shapes known at emit time stay static code.

Reshape, Flatten, Transpose and Concat work on quantized tensors too: an int8 program passes a held
quantized tensor through them (qconvert/backends/torch/ops/quantized.py decides when).
"""

from __future__ import annotations

import operator
from typing import List

import numpy as np
import onnx_ir as ir
import torch
from torch import Tensor

from qconvert.backends.torch.ops.common import ints, prod, shape_of, string
from qconvert.backends.torch.registry import emits


def _x(b, node, index=0):
    held = b.quant(node.inputs[index])
    return held.node if held else b.input(node, index)


# -- run-time helpers (compiled into the artifact) -------------------------------------------------
def reshape_to(x: Tensor, dims: List[int], allowzero: bool) -> Tensor:
    out = list(dims)
    for i in range(len(out)):
        if out[i] == 0 and not allowzero:
            out[i] = x.size(i)
    if -1 in out:  # resolved here: torch cannot infer -1 when another dim is 0
        known = 1
        for d in out:
            if d != -1:
                known *= d
        out[out.index(-1)] = x.numel() // known if known else 0
    return x.reshape(out)


def flatten_at(x: Tensor, axis: int) -> Tensor:
    if axis < 0:
        axis += x.dim()
    return x.reshape(prod(x.shape[:axis]), prod(x.shape[axis:]))


def squeeze_dims(x: Tensor, axes: List[int]) -> Tensor:
    dims = [a + x.dim() if a < 0 else a for a in axes]
    return x.squeeze(dims)


def unsqueeze_dims(x: Tensor, axes: List[int]) -> Tensor:
    rank = x.dim() + len(axes)
    dims = [a + rank if a < 0 else a for a in axes]
    dims.sort()
    for d in dims:
        x = x.unsqueeze(d)
    return x


def gather_(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    if axis < 0:
        axis += x.dim()
    size = x.size(axis)
    flat = indices.reshape(-1).long()
    flat = torch.where(flat < 0, flat + size, flat)
    out_shape = x.shape[:axis] + indices.shape + x.shape[axis + 1:]
    return x.index_select(axis, flat).reshape(out_shape)


def slice_axes(x: Tensor, starts: List[int], ends: List[int], axes: List[int], steps: List[int]) -> Tensor:
    """ONNX Slice: starts/ends clamped per ONNX, negative steps walk backwards."""
    for i in range(len(starts)):
        axis = axes[i] + x.dim() if axes[i] < 0 else axes[i]
        n = x.size(axis)
        start, end, step = starts[i], ends[i], steps[i]
        start = start + n if start < 0 else start
        end = end + n if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), n), min(max(end, 0), n)
            if step == 1:
                x = x.narrow(axis, start, max(end - start, 0))
                continue
        else:
            start, end = min(max(start, -1), n - 1), min(max(end, -1), n - 1)
        index = torch.arange(start, end, step, dtype=torch.long, device=x.device)
        x = x.index_select(axis, index)
    return x


def expand_to(x: Tensor, dims: List[int]) -> Tensor:
    """ONNX Expand: bidirectional broadcasting (a 1 in the shape keeps the input's dim)."""
    rank = max(x.dim(), len(dims))
    out: List[int] = []
    for i in range(rank):
        a = x.size(i - rank + x.dim()) if i - rank + x.dim() >= 0 else 1
        s = dims[i - rank + len(dims)] if i - rank + len(dims) >= 0 else 1
        out.append(a if s == 1 else s)
    return x.expand(out)


def tile_(x: Tensor, repeats: List[int]) -> Tensor:
    return x.repeat(repeats)


def range_(start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    if start.is_floating_point():  # ONNX: ceil((limit - start) / delta) elements, start + i * delta
        count = max(int(torch.ceil((limit - start) / delta).item()), 0)
        steps = torch.arange(count, dtype=start.dtype, device=start.device)
        return start + steps * delta
    return torch.arange(int(start.item()), int(limit.item()), int(delta.item()), dtype=start.dtype,
                        device=start.device)


def split_even(x: Tensor, axis: int, parts: int) -> List[Tensor]:
    size = x.size(axis)
    chunk = (size + parts - 1) // parts  # ONNX: the last part is the smaller one
    sizes = [min(chunk, max(size - i * chunk, 0)) for i in range(parts)]
    return torch.split(x, sizes, axis)


def split_sizes(x: Tensor, sizes: List[int], axis: int) -> List[Tensor]:
    return torch.split(x, sizes, axis)


def eye_like(x: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    eye = torch.ones(x.size(0), x.size(1), dtype=torch.float32, device=x.device).tril(k).triu(k)
    return eye.to(dtype)


def trilu_(x: Tensor, k: Tensor, upper: bool) -> Tensor:
    shift = int(k.item())
    return torch.triu(x, shift) if upper else torch.tril(x, shift)


# -- emitters --------------------------------------------------------------------------------------
@emits("Constant")
def constant(b, node):
    attribute = next(iter(node.attributes.values()))
    name = attribute.name
    if name == "value":
        array = attribute.value.numpy()
    elif name in ("value_float", "value_int"):
        array = np.array(attribute.value, np.float32 if name == "value_float" else np.int64)
    elif name in ("value_floats", "value_ints"):
        array = np.array(list(attribute.value), np.float32 if name == "value_floats" else np.int64)
    else:
        raise b.unsupported(node, f"a {name} constant")
    if array.dtype == object or array.dtype.kind in "SU":
        raise b.unsupported(node, "torch has no string tensors")
    b.consts[node.outputs[0].name] = array
    return None


@emits("Identity")
def identity(b, node):
    held = b.values.get(node.inputs[0].name)
    return held if held is not None else b.input(node, 0)


@emits("Reshape")
def reshape(b, node):
    x = _x(b, node)
    allowzero = bool(b.attr(node, "allowzero", 0))
    shape = b.const(node.inputs[1])
    if shape is None or (0 in ints(shape) and allowzero) or (-1 in ints(shape) and 0 in ints(shape)):
        return b.call(reshape_to, x, b.ints_or_node(node, 1), allowzero)
    target = []
    for axis, size in enumerate(ints(shape)):
        target.append(b.method("size", x, axis) if size == 0 else size)
    return b.method("reshape", x, target)


@emits("Flatten")
def flatten(b, node):
    axis = int(b.attr(node, "axis", 1))
    x = _x(b, node)
    if axis == 1:
        return b.call(torch.flatten, x, 1)
    return b.call(flatten_at, x, axis)


@emits("Transpose")
def transpose(b, node):
    perm = b.attr(node, "perm")
    if perm is None:
        rank = b.rank(node.inputs[0])
        if rank is None:
            raise b.unsupported(node, "no perm and an unknown rank")
        perm = list(reversed(range(rank)))
    return b.method("permute", _x(b, node), list(perm))


@emits("Concat")
def concat(b, node):
    return b.call(torch.cat, [b.input(node, i) for i in range(len(node.inputs))], int(b.attr(node, "axis")))


def _axes(b, node, index=1):
    """Axes from the input (opset 13+) or the attribute (before)."""
    if b.has(node, index):
        return b.ints_or_node(node, index)
    axes = b.attr(node, "axes")
    return list(axes) if axes is not None else None


@emits("Squeeze")
def squeeze(b, node):
    axes, x = _axes(b, node), _x(b, node)
    if axes is None:
        return b.call(torch.squeeze, x)
    return b.call(squeeze_dims, x, axes)


@emits("Unsqueeze")
def unsqueeze(b, node):
    axes, x = _axes(b, node), _x(b, node)
    if isinstance(axes, list) and b.rank(node.inputs[0]) is not None:
        rank = b.rank(node.inputs[0]) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            x = b.call(torch.unsqueeze, x, axis)
        return x
    return b.call(unsqueeze_dims, x, axes)


@emits("Gather")
def gather(b, node):
    axis = int(b.attr(node, "axis", 0))
    data, indices = b.const(node.inputs[0]), b.const(node.inputs[1])
    if data is not None and data.ndim == 2 and axis == 0 and indices is None and b.is_float(node.inputs[0]):
        # an embedding lookup (token ids are never negative)
        return b.call(torch.nn.functional.embedding, b.input(node, 1), b.input(node, 0))
    if indices is not None and indices.ndim == 0:
        return b.call(torch.select, b.input(node, 0), axis, int(indices))
    return b.call(gather_, b.input(node, 0), b.input(node, 1), axis)


@emits("Slice")
def slice_(b, node):
    if b.opset < 10:
        starts, ends = list(b.attr(node, "starts")), list(b.attr(node, "ends"))
        axes = list(b.attr(node, "axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = b.ints_or_node(node, 1), b.ints_or_node(node, 2)
        axes, steps = b.ints_or_node(node, 3), b.ints_or_node(node, 4)
    static = all(isinstance(v, list) or v is None for v in (starts, ends, axes, steps))
    if static:
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(axes)
    x = b.input(node, 0)
    if static and all(s == 1 for s in steps):  # Python slicing clamps as ONNX does for step 1
        for start, end, axis in zip(starts, ends, axes):
            # Bounds past any dim mean "from the start" / "to the end" (TorchScript cannot even parse -2**63).
            piece = slice(start if start > -2**62 else None, end if end < 2**62 else None)
            index = (slice(None),) * axis + (piece,) if axis >= 0 else (Ellipsis, piece) + (slice(None),) * (-axis - 1)
            x = b.call(operator.getitem, x, index)
        return x
    # ONNX clamps bounds to the dim, so ±2**62 means the same as ±2**63 and TorchScript can parse it.
    starts, ends = (_within_int62(v) if isinstance(v, list) else v for v in (starts, ends))
    if axes is None:
        axes = b.call(_range_list, starts)
    if steps is None:
        steps = b.call(_ones_list, starts) if not isinstance(starts, list) else [1] * len(starts)
    return b.call(slice_axes, x, starts, ends, axes, steps)


def _within_int62(values: list[int]) -> list[int]:
    return [max(-2**62, min(2**62, int(v))) for v in values]


def _range_list(values: List[int]) -> List[int]:
    return list(range(len(values)))


def _ones_list(values: List[int]) -> List[int]:
    return [1 for _ in values]


@emits("Shape")
def shape(b, node):
    dims = b.static_shape(node.inputs[0])
    start, end = b.attr(node, "start", 0), b.attr(node, "end")
    piece = slice(int(start), int(end) if end is not None else None)
    if dims is not None:
        b.consts[node.outputs[0].name] = np.array(dims[piece], np.int64)
        return None
    held = b.quant(node.inputs[0])
    x = held.node if held else b.input(node, 0)
    result = b.call(shape_of, x)
    return result if piece == slice(0, None) else b.call(operator.getitem, result, piece)


def numel_of(x: Tensor) -> Tensor:
    return torch.tensor(x.numel(), dtype=torch.long)


@emits("Size")
def size(b, node):
    dims = b.static_shape(node.inputs[0])
    if dims is not None:
        b.consts[node.outputs[0].name] = np.array(int(np.prod(dims)), np.int64)
        return None
    return b.call(numel_of, b.input(node, 0))


@emits("Expand")
def expand(b, node):
    return b.call(expand_to, b.input(node, 0), b.ints_or_node(node, 1))


@emits("Tile")
def tile(b, node):
    return b.call(tile_, b.input(node, 0), b.ints_or_node(node, 1))


@emits("Range")
def range_op(b, node):
    arrays = [b.const(v) for v in node.inputs]
    if all(a is not None for a in arrays):
        start, limit, delta = [a.reshape(()) for a in arrays]
        if start.dtype.kind == "f":
            count = max(int(np.ceil((limit - start) / delta)), 0)
            values = start + np.arange(count, dtype=start.dtype) * delta
        else:
            values = np.arange(start, limit, delta, dtype=start.dtype)
        b.consts[node.outputs[0].name] = values.astype(start.dtype)
        return None
    return b.call(range_, b.input(node, 0), b.input(node, 1), b.input(node, 2))


@emits("ConstantOfShape")
def constant_of_shape(b, node):
    value = b.attr(node, "value")
    array = value.numpy().reshape(-1) if value is not None else np.zeros(1, np.float32)
    dtype = b.torch_dtype(node, ir.DataType.from_numpy(array.dtype))
    dims = b.ints_or_node(node, 0)
    fill = array[0].item()
    if isinstance(dims, list) and int(np.prod(dims)) <= 16:  # small: a constant, so shape math stays static
        b.consts[node.outputs[0].name] = np.full(dims, fill, dtype=array.dtype)
        return None
    return b.call(torch.full, dims, fill, dtype=dtype)


@emits("Split")
def split(b, node):
    axis = int(b.attr(node, "axis", 0))
    parts = len(node.outputs)
    sizes = b.ints_or_node(node, 1) if b.opset >= 13 else b.attr(node, "split")
    if sizes is None and b.attr(node, "num_outputs") is not None:
        parts = int(b.attr(node, "num_outputs"))
    x = b.input(node, 0)
    if sizes is None:
        dims = b.shape(node.inputs[0])
        length = dims[axis] if dims is not None and isinstance(dims[axis], int) else None
        if length is not None:
            chunk = -(-length // parts)
            sizes = [min(chunk, max(length - i * chunk, 0)) for i in range(parts)]
        else:
            result = b.call(split_even, x, axis, parts)
            return [b.call(operator.getitem, result, i) for i in range(parts)]
    if isinstance(sizes, (list, tuple)):  # a constant input, or the attribute (a tuple) before opset 13
        sizes = [int(s) for s in sizes]
        result = b.call(torch.split, x, sizes, axis)
    else:
        result = b.call(split_sizes, x, sizes, axis)
    return [b.call(operator.getitem, result, i) for i in range(parts)]


@emits("EyeLike")
def eyelike(b, node):
    dtype = b.attr(node, "dtype")
    dtype = ir.DataType(dtype) if dtype is not None else b.dtype(node.inputs[0])
    torch_dtype = b.torch_dtype(node, dtype)
    return b.call(eye_like, b.input(node, 0), int(b.attr(node, "k", 0)), torch_dtype)


@emits("Trilu")
def trilu(b, node):
    upper = bool(b.attr(node, "upper", 1))
    x = b.input(node, 0)
    k = b.const(node.inputs[1]) if b.has(node, 1) else np.array(0)
    if k is not None:
        return b.call(torch.triu if upper else torch.tril, x, int(k.reshape(())))
    return b.call(trilu_, x, b.input(node, 1), upper)


def _chw(b, node, x) -> list:
    """Channels, height and width: the IR's static sizes where known, else read from the tensor at run time."""
    shape = b.shape(node.inputs[0])
    if shape is not None and len(shape) != 4:
        raise b.unsupported(node, f"needs a 4-D input, got rank {len(shape)}")
    dims = list(shape[1:]) if shape is not None else [None] * 3
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
    mode = string(b.attr(node, "mode", "DCR"))
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
    mode = string(b.attr(node, "mode", "DCR"))
    x = b.method("reshape", x, [-1, channels, _divided(b, height, block), block, _divided(b, width, block), block])
    x = b.method("permute", x, [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4])
    return b.method("reshape", x, [-1, _times(b, channels, block * block), _divided(b, height, block),
                                   _divided(b, width, block)])

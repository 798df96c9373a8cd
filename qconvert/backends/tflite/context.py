"""What an op emitter sees: the node, its inputs as held values, and helpers to arrange layouts.

Values are held as ``Held(tensor, perm)`` with ``tensor = transpose(ir_value, perm)``; constants stay
NumPy arrays (always in the IR's layout) so emitters can rewrite weights before TensorFlow sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir
import tensorflow as tf

from qconvert.backends.tflite import layout
from qconvert.errors import UnsupportedOpError

# TFLite wants int32 indices and shapes; int64 and float64 values are carried as int32 and float32.
NARROWED = {np.dtype(np.int64): np.int32, np.dtype(np.float64): np.float32, np.dtype(np.uint64): np.int32}


def narrow(array: np.ndarray) -> np.ndarray:
    """The array as TFLite carries it; 64-bit integers saturate (INT64_MAX "to the end" stays the largest)."""
    array = np.asarray(array)
    if array.dtype not in NARROWED:
        return array
    wanted = np.dtype(NARROWED[array.dtype])
    if wanted.kind == "i":
        info = np.iinfo(wanted)
        array = np.clip(array, info.min, info.max)
    return array.astype(wanted)


def carried(dtype: ir.DataType | None) -> str | None:
    """The name of the dtype a value of IR dtype ``dtype`` is carried in (None: not representable)."""
    if dtype is None:
        return None
    try:
        return tf_dtype(dtype).name
    except (TypeError, ValueError):
        return None


def tf_dtype(dtype: ir.DataType) -> tf.DType:
    return tf.as_dtype(narrow(np.zeros((), dtype.numpy())).dtype)


@dataclass
class Held:
    tensor: Any  # tf.Tensor, or np.ndarray for constants
    perm: layout.Perm
    # A [N, K] value flattened from a channels-last map without a transpose: tensor[:, j] is IR column
    # columns[j]. Only a dense layer (which permutes its weight rows instead) reads it as it is.
    columns: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.perm)

    @property
    def is_const(self) -> bool:
        return isinstance(self.tensor, np.ndarray)


class ValueTable:
    """Held values by IR name, and each value's re-arrangements made so far (made once, reused)."""

    def __init__(self):
        self.held: dict[str, Held] = {}
        self._arranged: dict[tuple[str, layout.Perm], Any] = {}

    def arrange(self, name: str, perm: layout.Perm):
        held = self.held[name]
        if held.columns is not None:  # columns back in IR order (dense consumers never get here)
            self.held[name] = held = Held(tf.gather(held.tensor, np.argsort(held.columns), axis=1), held.perm)
        if held.perm == perm:
            return tf.convert_to_tensor(narrow(held.tensor)) if held.is_const else held.tensor
        if held.is_const:
            return tf.constant(narrow(np.transpose(held.tensor, layout.inverse(held.perm))).transpose(perm))
        key = (name, perm)
        if key not in self._arranged:
            self._arranged[key] = rearrange(held.tensor, held.perm, perm)
        return self._arranged[key]


def rearrange(tensor: tf.Tensor, held: layout.Perm, wanted: layout.Perm) -> tf.Tensor:
    """A transpose, or a reshape where the transpose would only move size-1 axes."""
    move = layout.between(held, wanted)
    shape = tensor.shape.as_list()
    if not layout.moves_data(shape, move):
        new_shape = [shape[axis] for axis in move]
        if new_shape.count(None) <= 1:
            return tf.reshape(tensor, [-1 if d is None else d for d in new_shape])
    return tf.transpose(tensor, move)


class EmitContext:
    def __init__(self, node: ir.Node, values: ValueTable, target: str, opset: int):
        self.node, self.values, self.target, self.opset = node, values, target, opset

    # --- the node -------------------------------------------------------------------------------
    @property
    def op_type(self) -> str:
        return self.node.op_type

    def attr(self, name: str, default: Any = None) -> Any:
        attribute = self.node.attributes.get(name)
        if attribute is None:
            return default
        value = attribute.value
        return value.numpy() if isinstance(value, ir.TensorProtocol) else value

    def text(self, name: str, default: str) -> str:
        value = self.attr(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def unsupported(self, reason: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.op_type, self.node.name or "", self.target, reason)

    # --- inputs ---------------------------------------------------------------------------------
    def has_input(self, index: int) -> bool:
        return index < len(self.node.inputs) and self.node.inputs[index] is not None

    @property
    def input_count(self) -> int:
        return sum(1 for value in self.node.inputs if value is not None)

    def held(self, index: int = 0) -> Held:
        return self.values.held[self.node.inputs[index].name]

    def rank(self, index: int = 0) -> int:
        return self.held(index).rank

    def perm(self, index: int = 0) -> layout.Perm:
        return self.held(index).perm

    def const(self, index: int, what: str = "") -> np.ndarray:
        """An input that must be known when emitting (an attribute-like input such as a fake-quant range)."""
        value = self.static(index)
        if value is None:
            raise self.unsupported(f"input {index}{' ' + what if what else ''} must be a constant here")
        return value

    def static(self, index: int) -> np.ndarray | None:
        """The input's value when it is known at emit time (a constant, or a tensor TF can fold), else None."""
        held = self.held(index)
        if held.is_const:
            return held.tensor
        static = tf.get_static_value(held.tensor)
        return None if static is None else np.transpose(static, layout.inverse(held.perm))

    def vector(self, index: int) -> np.ndarray | tf.Tensor:
        """A 1-D integer input (shape, axes, pads, repeats, sizes) as NumPy when known, else an int32 tensor."""
        value = self.static(index)
        if value is not None:
            return narrow(np.asarray(value).astype(np.int64)).reshape(-1)
        # No cast or reshape where none is needed: TF's shape inference reads through Pack/Concat.
        vector = self.plain(index)
        vector = vector if vector.dtype == tf.int32 else tf.cast(vector, tf.int32)
        return vector if len(vector.shape) == 1 else tf.reshape(vector, [-1])

    def elements(self, index: int) -> list:
        """A 1-D integer input element by element: ints where TF knows them, scalar tensors elsewhere."""
        vector = self.vector(index)
        if isinstance(vector, np.ndarray):
            return [int(v) for v in vector]
        from tensorflow.python.framework import tensor_util

        try:
            known = tensor_util.constant_value_as_shape(vector).as_list()
        except ValueError:
            known = [None] * int(vector.shape[0])
        return [d if d is not None else vector[i] for i, d in enumerate(known)]

    def ir_dims(self, index: int = 0) -> list:
        """The input's IR dims: ints where static, int32 scalar tensors where known only at run time."""
        held = self.held(index)
        static = self.ir_shape(index)
        if all(d is not None for d in static):
            return static
        dynamic = tf.shape(held.tensor)
        return [d if d is not None else dynamic[held.perm.index(axis)] for axis, d in enumerate(static)]

    def const_or_none(self, index: int, what: str = "") -> np.ndarray | None:
        return self.const(index, what) if self.has_input(index) else None

    def tensor(self, index: int = 0, perm: layout.Perm | None = None) -> tf.Tensor:
        """Input ``index`` as a tensor arranged in ``perm`` (default: as held)."""
        held = self.held(index)
        return self.values.arrange(self.node.inputs[index].name, held.perm if perm is None else perm)

    def plain(self, index: int = 0) -> tf.Tensor:
        return self.tensor(index, layout.identity(self.rank(index)))

    def channels_last(self, index: int = 0) -> tf.Tensor:
        return self.tensor(index, layout.channels_last(self.rank(index)))

    def ir_shape(self, index: int = 0) -> list[int | None]:
        """Static IR shape of an input (None where unknown, e.g. the batch)."""
        held = self.held(index)
        shape = list(held.tensor.shape) if held.is_const else held.tensor.shape.as_list()
        return [shape[held.perm.index(axis)] for axis in range(held.rank)]

    def ir_dtype(self, index: int = 0) -> str | None:
        """The carried dtype name of the IR value (None when the IR does not say)."""
        return carried(self.node.inputs[index].dtype)

    def dtype(self, index: int = 0) -> tf.DType:
        held = self.held(index)
        return tf.as_dtype(narrow(held.tensor).dtype) if held.is_const else held.tensor.dtype

    # --- outputs --------------------------------------------------------------------------------
    def set(self, tensor: Any, perm: layout.Perm | None = None, index: int = 0) -> None:
        rank = len(tensor.shape)
        self.values.held[self.node.outputs[index].name] = Held(tensor, perm or layout.identity(rank))

    @property
    def output_count(self) -> int:
        return len(self.node.outputs)

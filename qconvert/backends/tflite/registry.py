"""The op registry: one emitter per ONNX op type, registered with ``@emits("Conv")``.

An emitter gets the node's EmitContext (inputs, attributes, layout helpers) and sets the node's outputs.
Registering an op twice fails at import, so two families cannot silently shadow each other.

``dtypes`` names the carried dtypes (int64 is carried as int32, float64 as float32) that the builtin
kernels an emitter writes accept for the node's run-time inputs and its outputs. Anything else is refused
at emit time: the converter would otherwise reject the op ("neither a custom op nor a flex op") or, for
some, LiteRT would abort.
"""

from __future__ import annotations

from collections.abc import Callable

from qconvert.backends.op_registry import registering_into

Emitter = Callable[["EmitContext"], None]  # noqa: F821  (context.py imports this module)

EMITTERS: dict[str, Emitter] = {}
DTYPES: dict[str, frozenset[str]] = {}

# The carried dtypes each kind of builtin kernel takes (measured with the converter and LiteRT).
FLOAT = frozenset({"float32"})
NUMERIC = frozenset({"float32", "int32"})
COMPARABLE = frozenset({"float32", "int32", "int16"})
LOGICAL = frozenset({"bool"})
# Data movement (reshape, transpose, concat, gather, slice, pad...) and SELECT.
MOVABLE = frozenset({"float32", "int32", "bool"})
# Pure reshapes, gathers and slices also move 8-bit integers.
BYTES = MOVABLE | {"int8", "uint8"}
# What CAST converts between (and what an artifact's inputs and outputs can be).
CASTABLE = frozenset({"float32", "int32", "bool", "int8", "uint8", "int16", "uint16", "uint32", "float16"})


def emits(*op_types: str, dtypes: frozenset[str] | None = None) -> Callable[[Emitter], Emitter]:
    register = registering_into(EMITTERS, "TFLite emitter", op_types)
    if dtypes is not None:
        for op_type in op_types:
            DTYPES[op_type] = frozenset(dtypes)
    return register


def supported_ops() -> frozenset[str]:
    from qconvert.quiet_imports import import_tensorflow

    import_tensorflow()
    import qconvert.backends.tflite.ops  # noqa: F401  (registers every family)

    return frozenset(EMITTERS)

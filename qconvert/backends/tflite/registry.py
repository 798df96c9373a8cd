"""The op registry: one emitter per ONNX op type, registered with ``@emits("Conv")``.

An emitter gets the node's EmitContext (inputs, attributes, layout helpers) and sets the node's outputs.
Registering an op twice fails at import, so two families cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable

from qconvert.backends.op_registry import registering_into

Emitter = Callable[["EmitContext"], None]  # noqa: F821  (context.py imports this module)

EMITTERS: dict[str, Emitter] = {}


def emits(*op_types: str) -> Callable[[Emitter], Emitter]:
    return registering_into(EMITTERS, "TFLite emitter", op_types)


def supported_ops() -> frozenset[str]:
    from qconvert.quiet_imports import import_tensorflow

    import_tensorflow()
    import qconvert.backends.tflite.ops  # noqa: F401  (registers every family)

    return frozenset(EMITTERS)

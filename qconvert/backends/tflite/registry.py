"""The op registry: one emitter per ONNX op type, registered with ``@emits("Conv")``.

An emitter gets the node's EmitContext (inputs, attributes, layout helpers) and sets the node's outputs.
Registering an op twice fails at import, so two families cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable

Emitter = Callable[["EmitContext"], None]  # noqa: F821  (context.py imports this module)

EMITTERS: dict[str, Emitter] = {}


def emits(*op_types: str) -> Callable[[Emitter], Emitter]:
    def register(function: Emitter) -> Emitter:
        for op_type in op_types:
            if op_type in EMITTERS:
                raise RuntimeError(f"TFLite emitter for {op_type} registered twice "
                                   f"({EMITTERS[op_type].__module__} and {function.__module__})")
            EMITTERS[op_type] = function
        return function

    return register


def supported_ops() -> frozenset[str]:
    from qconvert.quiet_imports import import_tensorflow

    import_tensorflow()
    import qconvert.backends.tflite.ops  # noqa: F401  (registers every family)

    return frozenset(EMITTERS)

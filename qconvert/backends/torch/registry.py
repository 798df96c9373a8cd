"""The op registries: ``@emits("Conv")`` for float ops, ``@lowers("Conv")`` for int8 kernels.

An emitter gets the Builder and the IR node and returns the node's outputs as fx nodes. A lowering
(qconvert/backends/torch/ops/quantized.py) gets the same and returns True when it consumed the pattern
starting at that node with an int8 kernel, False to let the float emitter run (dequant -> float op -> quant).
Registering an op twice fails at import, so two families cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable

EMITTERS: dict[str, Callable] = {}
LOWERINGS: dict[str, Callable] = {}


def _register(table: dict, kind: str, op_types: tuple[str, ...]) -> Callable:
    def register(function: Callable) -> Callable:
        for op_type in op_types:
            if op_type in table:
                raise RuntimeError(f"torch {kind} for {op_type} registered twice "
                                   f"({table[op_type].__module__} and {function.__module__})")
            table[op_type] = function
        return function

    return register


def emits(*op_types: str) -> Callable:
    return _register(EMITTERS, "emitter", op_types)


def lowers(*op_types: str) -> Callable:
    return _register(LOWERINGS, "int8 lowering", op_types)


def load_ops() -> None:
    import qconvert.backends.torch.ops  # noqa: F401  (registers every family)


def supported_ops() -> frozenset[str]:
    load_ops()
    return frozenset(EMITTERS)


def int8_kernel_ops() -> frozenset[str]:
    load_ops()
    return frozenset(LOWERINGS)

"""The op registries: ``@emits("Conv")`` for float ops, ``@lowers("Conv")`` for int8 kernels.

An emitter gets the Builder and the IR node and returns the node's outputs as fx nodes. A lowering
(qconvert/backends/torch/ops/quantized.py) gets the same and returns True when it consumed the pattern
starting at that node with an int8 kernel, False to let the float emitter run (dequant -> float op -> quant).
Registering an op twice fails at import, so two families cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable

from qconvert.backends.op_registry import registering_into

EMITTERS: dict[str, Callable] = {}
LOWERINGS: dict[str, Callable] = {}


def _register(table: dict, kind: str, op_types: tuple[str, ...]) -> Callable:
    return registering_into(table, f"torch {kind}", op_types)


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

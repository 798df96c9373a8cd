"""Per-op registries of the emitting backends: `@decorator("Conv", ...)` fills a table, and an op
registered twice fails at import, naming both modules."""

from __future__ import annotations

from collections.abc import Callable


def registering_into(table: dict[str, Callable], label: str, op_types: tuple[str, ...]) -> Callable:
    def register(function: Callable) -> Callable:
        for op_type in op_types:
            if op_type in table:
                raise RuntimeError(f"{label} for {op_type} registered twice "
                                   f"({table[op_type].__module__} and {function.__module__})")
            table[op_type] = function
        return function

    return register

"""The loop every pattern-rewriting pass shares: match each node, check the match, rewrite it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import onnx_ir as ir

Match = TypeVar("Match")


def rewrite_matches(model: ir.Model, match: Callable[[ir.Node], Match | None],
                    check: Callable[[Match], str | None], rewrite: Callable[[Match], None],
                    logger: logging.Logger, skipped: str) -> ir.passes.PassResult:
    """For every node of every graph: `match` (None when the pattern is absent), `check` (why it must not
    be rewritten, logged as "<op> <name> <skipped>: <why>", or None) and `rewrite`."""
    modified = False
    for graph in model.graphs():
        for node in list(graph):
            found = match(node)
            if found is None:
                continue
            reason = check(found)
            if reason is not None:
                logger.debug("%s %s %s: %s", node.op_type, node.name, skipped, reason)
                continue
            rewrite(found)
            modified = True
    return ir.passes.PassResult(model, modified=modified)


def replace_value(old: ir.Value, new: ir.Value) -> None:
    """`new` takes `old`'s place: its consumers, its graph-output slot, its name (so calibration ranges,
    reports and graph outputs keep it), and its type and shape where known. `old`'s producer can then be
    removed."""
    name = old.name
    new.type, new.shape = old.type or new.type, old.shape or new.shape
    ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
    old.name = f"{name}_replaced"
    new.name = name

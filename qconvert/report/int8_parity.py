"""Cross-runtime int8 parity: the static int8 artifacts compared with each other, not only with float.

Every static int8 target lowers the same QDQ IR (one set of scales and zero points), so their outputs
should agree to a step or so of the output's quantization grid. For each pair of artifacts that ran:
SQNR of one against the other (the first as reference), the largest difference in steps of the IR's
output scale, and top-1 agreement where the output holds class scores.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import onnx_ir as ir
from rich.table import Table

from qconvert.report.metrics import looks_like_class_scores, sqnr_db, top1_agreement


def output_scales(model: ir.Model, fallback: list[float | None] = ()) -> list[float | None]:
    """The scale each graph output is dequantized with in the QDQ IR; where the IR's output stays float
    (e.g. after a Sigmoid), the integer artifact's output scale (``fallback``), else None."""
    scales = []
    for index, value in enumerate(model.graph.outputs):
        node = value.producer()
        scale = None
        if node is not None and node.op_type == "DequantizeLinear" and node.inputs[1].const_value is not None:
            values = np.asarray(node.inputs[1].const_value.numpy()).reshape(-1)
            scale = float(values[0]) if values.size == 1 else None
        if scale is None and index < len(fallback):
            scale = fallback[index]
        scales.append(scale)
    return scales


def pair(a: list[np.ndarray], b: list[np.ndarray], scales: list[float | None]) -> dict:
    if len(a) != len(b) or any(np.shape(x) != np.shape(y) for x, y in zip(a, b)):
        return {"sqnr_db": None, "max_steps": None, "top1_agreement": None, "error": "outputs differ in shape"}
    sqnr = min(sqnr_db(x, y) for x, y in zip(a, b))
    steps = [float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) / s
             for x, y, s in zip(a, b, scales) if s and np.size(x)]
    top1 = top1_agreement(a[0], b[0]) if looks_like_class_scores(np.asarray(a[0])) else None
    return {"sqnr_db": sqnr, "max_steps": max(steps) if steps else None, "top1_agreement": top1}


def parity_matrix(outputs: dict[str, list[np.ndarray]], scales: list[float | None]) -> list[dict]:
    """One entry per pair of targets (in the order given): {"a", "b", "sqnr_db", "max_steps", "top1_agreement"}."""
    return [{"a": a, "b": b, **pair(outputs[a], outputs[b], scales)} for a, b in combinations(outputs, 2)]


def _num(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and np.isinf(value):
        return "exact"
    return format(value, fmt)


def _cells(entry: dict) -> list[str]:
    top1 = entry.get("top1_agreement")
    return [entry["a"], entry["b"], _num(entry.get("sqnr_db"), ".1f"), _num(entry.get("max_steps"), ".2f"),
            _num(top1 * 100 if top1 is not None else None, ".1f")]


COLUMNS = ["int8 artifact", "vs", "SQNR dB", "max diff (output steps)", "top-1 agree %"]


def parity_table(entries: list[dict]) -> Table:
    table = Table(title="int8 artifacts against each other (same QDQ IR, same scales)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("int8 artifact", "vs") else "right")
    for entry in entries:
        table.add_row(*_cells(entry))
    return table


def parity_markdown(entries: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(entry)) + " |" for entry in entries]
    return "\n".join(lines)

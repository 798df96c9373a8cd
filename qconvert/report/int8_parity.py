"""Cross-runtime int8 parity: the static int8 artifacts compared with each other, not only with float.

Every static int8 target lowers the same QDQ IR (one set of scales and zero points), so their outputs
should agree to a step or so of the output's quantization grid. For each pair of artifacts that ran:
SQNR of one against the other (the first as reference), the largest difference in steps of the IR's
output scale, and top-1 agreement where the output holds class scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import onnx_ir as ir
from rich.table import Table

from qconvert.report.columns import Column, TextTable, text
from qconvert.report.metrics import looks_like_class_scores, sqnr_db, top1_agreement
from qconvert.report.render import to_markdown, to_rich


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


@dataclass
class ParityPair:
    a: str  # the reference of the pair
    b: str
    sqnr_db: float | None
    max_steps: float | None  # the largest difference, in steps of the IR's output scale
    top1_agreement: float | None  # share of samples, 0..1; None unless the output holds class scores
    error: str | None = None


def pair(name_a: str, name_b: str, a: list[np.ndarray], b: list[np.ndarray],
         scales: list[float | None]) -> ParityPair:
    if len(a) != len(b) or any(np.shape(x) != np.shape(y) for x, y in zip(a, b)):
        return ParityPair(name_a, name_b, None, None, None, "outputs differ in shape")
    sqnr = min(sqnr_db(x, y) for x, y in zip(a, b))
    steps = [float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) / s
             for x, y, s in zip(a, b, scales) if s and np.size(x)]
    top1 = top1_agreement(a[0], b[0]) if looks_like_class_scores(np.asarray(a[0])) else None
    return ParityPair(name_a, name_b, sqnr, max(steps) if steps else None, top1)


def parity_matrix(outputs: dict[str, list[np.ndarray]], scales: list[float | None]) -> list[ParityPair]:
    """One entry per pair of targets, in the order given."""
    return [pair(a, b, outputs[a], outputs[b], scales) for a, b in combinations(outputs, 2)]


def percent(share: float | None) -> float | None:
    return None if share is None else share * 100


COLUMNS = [text("int8 artifact", lambda e: e.a), text("vs", lambda e: e.b),
           Column("SQNR dB", lambda e: e.sqnr_db, ".1f"),
           Column("max diff (output steps)", lambda e: e.max_steps, ".2f"),
           Column("top-1 agree %", lambda e: percent(e.top1_agreement), ".1f")]


def parity_spec(entries: list[ParityPair]) -> TextTable:
    return TextTable("int8 artifacts against each other (same QDQ IR, same scales)", COLUMNS, entries)


def parity_table(entries: list[ParityPair]) -> Table:
    return to_rich(parity_spec(entries))


def parity_markdown(entries: list[ParityPair]) -> str:
    return to_markdown(parity_spec(entries))

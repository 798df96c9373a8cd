"""The training table: each fine-tuning, QAT or PTQ refinement, with its IR scored before and after it
(onnxruntime, the QDQ IR as the onnx-qdq artifact runs it): PTQ and QAT side by side."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.accuracy import format_metrics
from qconvert.report.result import ConversionResult, TrainingRun
from qconvert.report.table import _num


def _scores(scores: dict[str, float] | None) -> str:
    if not scores:
        return "–"
    metrics = {k: v for k, v in scores.items() if k != "sqnr_db"}
    sqnr = f"SQNR {_num(scores.get('sqnr_db'), '.1f')} dB"
    return f"{format_metrics(metrics)} · {sqnr}" if metrics else sqnr


def _per_epoch(run: TrainingRun) -> float | None:
    timed = [e["seconds"] for e in run.epochs if e["epoch"] > 0]
    return sum(timed) / len(timed) if timed else None


def training_table(result: ConversionResult) -> Table:
    table = Table(title="training on the IR", caption="before / after: the IR in onnxruntime on the --eval set "
                  "(SQNR of its first output against the reference on the parity samples)")
    for column, justify in [("stage", "left"), ("data", "left"), ("loss", "left"), ("lr", "right"),
                            ("epochs", "right"), ("best", "right"), ("s / epoch", "right"), ("total s", "right"),
                            ("before", "right"), ("after", "right")]:
        table.add_column(column, justify=justify)
    for run in result.training:
        epochs = len([e for e in run.epochs if e["epoch"] > 0]) or None
        table.add_row(run.stage, run.data, run.loss or "–", _num(run.lr, "g"), _num(epochs, "d"),
                      _num(run.best_epoch, "d"), _num(_per_epoch(run), ".1f"), _num(run.seconds, ".1f"),
                      _scores(run.before), _scores(run.after))
    return table

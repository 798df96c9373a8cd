"""The training table: each fine-tuning, QAT or PTQ refinement, with its IR scored before and after it
(onnxruntime, the QDQ IR as the onnx-qdq artifact runs it): PTQ and QAT side by side."""

from __future__ import annotations

from rich.table import Table

from qconvert.report.columns import Column, TextTable, text
from qconvert.report.format import MISSING, metrics_text, number
from qconvert.report.render import to_rich
from qconvert.report.result import ConversionResult, TrainingRun


def scores_text(scores: dict[str, float] | None) -> str:
    if not scores:
        return MISSING
    metrics = {k: v for k, v in scores.items() if k != "sqnr_db"}
    sqnr = f"SQNR {number(scores.get('sqnr_db'), '.1f')} dB"
    return f"{metrics_text(metrics)} · {sqnr}" if metrics else sqnr


def per_epoch_s(run: TrainingRun) -> float | None:
    timed = [e["seconds"] for e in run.epochs if e["epoch"] > 0]
    return sum(timed) / len(timed) if timed else None


def epochs_run(run: TrainingRun) -> int | None:
    return len([e for e in run.epochs if e["epoch"] > 0]) or None


COLUMNS = [
    text("stage", lambda r: r.stage), text("data", lambda r: r.data), text("loss", lambda r: r.loss),
    Column("lr", lambda r: r.lr, "g"), text("BatchNorm", lambda r: r.batchnorm), Column("epochs", epochs_run, "d"),
    Column("best", lambda r: r.best_epoch, "d"),
    Column("s / epoch", per_epoch_s, ".1f"), Column("total s", lambda r: r.seconds, ".1f"),
    Column("before", lambda r: scores_text(r.before)), Column("after", lambda r: scores_text(r.after)),
]


def training_spec(result: ConversionResult) -> TextTable:
    return TextTable("training on the IR", COLUMNS, result.training,
                     "before / after: the IR in onnxruntime on the --eval set (SQNR of its first output against the "
                     "reference on the parity samples)")


def training_table(result: ConversionResult) -> Table:
    return to_rich(training_spec(result))

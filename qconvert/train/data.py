"""Training data (`--train PATH`): an .npz with the inputs keyed by input name, plus optional `labels` for
the model's first output (the output --eval scores). Everything is checked before any training, each
failure one line that says what failed, where, and what to do.

What the labels are decides the loss (qconvert/train/losses.py), by the rule the report uses to pick an
--eval metric (qconvert/report/accuracy.py infer_metric):

    top1    class indices, one integer per sample, for [samples, classes] scores
    dice    a 0/1 mask of the output's size
    cosine  anything else of the output's size (regression targets)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qconvert.errors import UsageError
from qconvert.ir.inputs import specs_from_ir
from qconvert.quant.calibrate import batch_size_of
from qconvert.quant.data import LABELS, check_feeds
from qconvert.quant.evaluate import run_first_output
from qconvert.report.accuracy import infer_metric
from qconvert.report.metrics import looks_like_class_scores

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class TrainData:
    feeds: Feeds
    labels: np.ndarray | None  # class indices [N] int64, or float32 in the first output's shape
    task: str | None  # with labels: top1 | dice | cosine (infer_metric's names)

    @property
    def count(self) -> int:
        return len(next(iter(self.feeds.values())))


def load_train(path: str, model: ir.Model, flag: str = "--train") -> TrainData:
    """The training set for `model` (the float IR), checked against its inputs and first output."""
    where = f"{flag} {path}"
    file = Path(path)
    if not file.is_file() or file.suffix != ".npz":
        raise UsageError(f"{where}: expected an existing .npz with the inputs keyed by input name "
                         f"(and optional '{LABELS}')")
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as error:
        raise UsageError(f"{where}: unreadable ({type(error).__name__}: {error})") from None
    labels = arrays.pop(LABELS, None)
    return check_train(arrays, labels, model, where)


def check_train(arrays: Feeds, labels: np.ndarray | None, model: ir.Model, where: str) -> TrainData:
    names = [v.name for v in model.graph.inputs]
    missing, extra = [n for n in names if n not in arrays], sorted(set(arrays) - set(names))
    if missing or extra:
        problem = "; ".join(part for part in (f"no array for input {', '.join(missing)}" if missing else "",
                                              f"unknown array {', '.join(extra)}" if extra else "") if part)
        raise UsageError(f"{where}: {problem}; key arrays by input name ({', '.join(names)}) "
                         f"plus optional '{LABELS}'")
    feeds = check_feeds(arrays, specs_from_ir(model), where)
    if labels is None:
        return TrainData(feeds, None, None)
    labels, task = check_labels(np.asarray(labels), feeds, model, where)
    return TrainData(feeds, labels, task)


def check_labels(labels: np.ndarray, feeds: Feeds, model: ir.Model, where: str) -> tuple[np.ndarray, str]:
    """(labels shaped for the loss, task) or a UsageError: count, dtype, NaN/Inf, then the fit to the
    first output, whose shape comes from running the float IR on the first samples."""
    count = len(next(iter(feeds.values())))
    if labels.ndim == 0 or len(labels) != count:
        raise UsageError(f"{where}: {labels.size if labels.ndim == 0 else len(labels)} labels for {count} "
                         f"samples; give one label per sample")
    if labels.dtype.kind not in "biuf":
        raise UsageError(f"{where}: labels are {labels.dtype}; give integer class indices or float targets")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise UsageError(f"{where}: labels have {int(labels.size - np.isfinite(labels).sum())} NaN/Inf values")
    first = {name: array[:batch_size_of(model, 1)] for name, array in feeds.items()}
    sample = run_first_output(model, first)
    shape = (count, *sample.shape[1:])
    task = infer_metric(np.broadcast_to(sample[:1], shape), labels)  # a view: infer_metric reads shapes only
    if task == "top1":
        classes = shape[1]
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.size:
            raise UsageError(f"{where}: label {int(bad[0])} is not one of the first output's {classes} classes; "
                             f"give class indices in [0, {classes})")
        return labels.astype(np.int64), task
    if labels.size != int(np.prod(shape)):
        wanted = ("class indices, one integer per sample" if looks_like_class_scores(sample)
                  else "one target of the output's shape per sample")
        raise UsageError(f"{where}: labels {list(labels.shape)} do not fit the first output "
                         f"{['N', *shape[1:]]}; give {wanted}")
    return labels.reshape(shape).astype(np.float32), task

"""The result of a conversion: one row per artifact plus the source as reference."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from qconvert.report.bundles import BundleRecord
from qconvert.report.pruning import PruneRun

if TYPE_CHECKING:  # the sections' own modules import onnx-ir and rich; the result stays light to import
    from qconvert.quant.sensitivity import Sensitivity
    from qconvert.report.int8_parity import ParityPair


class Status(StrEnum):
    """A row's outcome; a str, so report.json keeps the words "ok", "failed", "skipped", "parity-failed"."""

    OK = "ok"
    FAILED = "failed"  # emitting or running it failed (the error says where)
    SKIPPED = "skipped"  # its runtime is not installed, or it needs data that was not given
    PARITY_FAILED = "parity-failed"  # it ran, and its SQNR is below the target's floor


@dataclass
class Row:
    target: str  # "source" for the reference row
    runtime: str
    status: Status
    path: str | None = None
    error: str | None = None
    device: str | None = None
    sqnr_db: float | None = None  # against the source (or the fine-tuned float IR)
    ir_sqnr_db: float | None = None  # against the IR it was emitted from, where QAT changed that IR's function
    max_abs_error: float | None = None
    top1_agreement: float | None = None  # share of samples, 0..1
    latency_ms: float | None = None  # median
    latency_p90_ms: float | None = None
    relative_time: float | None = None  # latency / source latency
    size_mb: float | None = None  # the file as written
    zip_mb: float | None = None  # the file zipped (deflate level 9, as tfmot reports pruned models)
    peak_rss_mb: float | None = None
    convert_s: float | None = None
    metrics: dict[str, float] | None = None  # task metrics on the --eval set (qconvert.report.accuracy)
    quantization: dict | None = None  # what the emitter reports: configuration, layers kept float
    latencies_ms: list[float] = field(default_factory=list)  # every timed run, in order

    def __setattr__(self, name, value):
        # Stages set the status from a runner's word ("ok", "failed"...): held as a Status either way.
        super().__setattr__(name, Status(value) if name == "status" else value)

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, Status.SKIPPED)

    @property
    def float_compute(self) -> dict[str, int]:
        return float_compute(self.quantization)


def float_compute(quantization: dict | None) -> dict[str, int]:
    """What an int8 artifact computes in float, op type -> count, from its emitter's facts (the one reading
    of them): torch-int8's float fallbacks, onnx-qdq's float ops ("Op node", from onnxruntime's optimized
    graph), TFLite's float ops (a file with layers kept float). Empty: integer kernels throughout."""
    quantization = quantization or {}
    found = Counter(dict(quantization.get("float_fallbacks") or {}))
    for op in quantization.get("float_ops") or []:
        found[op.split()[0]] += 1
    return dict(sorted(found.items()))


@dataclass
class TrainingRun:
    """One change of an IR variant by training (fine-tuning, QAT) or by a PTQ refinement (AdaRound, bias
    correction), with the IR scored in onnxruntime before and after it."""

    stage: str  # finetune | qat | weight-scales | adaround | bias-correction
    data: str  # what it ran on, e.g. "--train, labels", "--calib, distilled"
    seconds: float
    loss: str | None = None
    epochs: list[dict] = field(default_factory=list)  # {epoch, loss, metric, seconds}; epoch 0: before
    best_epoch: int | None = None  # whose weights were kept
    lr: float | None = None  # Adam's, for the trained stages
    before: dict[str, float] | None = None  # sqnr_db against the reference, and the --eval metric
    after: dict[str, float] | None = None
    layers: list[dict] = field(default_factory=list)  # per-layer facts: PTQ refinements, QAT weight scales
    batchnorm: str | None = None  # trained stages: "folded" or "batch statistics, N layers" (train/batchnorm.py)


@dataclass
class ConversionResult:
    model: str
    framework: str
    format: str
    out_dir: str
    device: str
    threads: int
    batch: int
    parity_samples: int
    load_s: float | None = None  # reading the source and exporting it to the IR, adapter check included
    parity_data: str = "random"  # random | eval | calib: where the parity samples came from
    metric: str | None = None  # the --eval metric (top1, dice, cosine)
    float_layers: list[str] = field(default_factory=list)  # static int8 layers left float by --max-drop
    # Static int8 artifacts against each other (qconvert.report.int8_parity): one entry per pair.
    int8_parity: list[ParityPair] = field(default_factory=list)
    sensitivity: Sensitivity | None = None  # --max-drop: each int8 layer's cost, activation histograms
    training: list[TrainingRun] = field(default_factory=list)  # in the order they ran
    pruning: PruneRun | None = None  # --prune: what it did to the float IR
    rows: list[Row] = field(default_factory=list)
    bundles: list[BundleRecord] = field(default_factory=list)  # --bundle: the deployment bundles written

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def row(self, target: str) -> Row:
        return next(r for r in self.rows if r.target == target)

    def to_dict(self) -> dict:
        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
            return value

        data = asdict(self)
        data["rows"] = [{k: clean(v) for k, v in row.items()} for row in data["rows"]]
        data["int8_parity"] = [{k: clean(v) for k, v in entry.items()} for entry in data["int8_parity"]]
        data["sensitivity"] = self.sensitivity.to_dict() if self.sensitivity else None
        data["bundles"] = [{k: clean(v) for k, v in bundle.items()} for bundle in data["bundles"]]
        for run in data["training"]:
            for key in ("before", "after"):
                run[key] = {k: clean(v) for k, v in run[key].items()} if run[key] else run[key]
        data["ok"] = self.ok
        return data
